-- MTA's daily subway ridership estimate.
select * from {{ ref('stg_official_daily') }}
