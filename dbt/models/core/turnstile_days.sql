{{ config(materialized='view') }}
-- Each day with turnstile rows, and whether it is complete: its week is loaded, a Friday's
-- last intervals are in the next week's file, a Saturday's first intervals start from the
-- previous week's readings (docs/data.md "Ridership": the midpoint rule, the week boundary).
with weeks as (select distinct week from {{ ref('fct_ridership_daily') }}),
days as (select distinct date, {{ week_of('date') }} as week from {{ ref('fct_ridership_daily') }})
select d.date, d.week,
       d.week in (select week from weeks)
       and ({{ iso_dow('d.date') }} != 5 or {{ dbt.dateadd('day', 7, 'd.week') }} in (select week from weeks))
       and ({{ iso_dow('d.date') }} != 6 or {{ dbt.dateadd('day', -7, 'd.week') }} in (select week from weeks))
       as complete
from days d
