{{ config(**weekly_incremental()) }}
-- Each week's station dimension per (unit, C/A).
select * from {{ ref('stg_stations') }}
