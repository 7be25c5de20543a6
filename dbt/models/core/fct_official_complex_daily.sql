{{ config(**weekly_incremental()) }}
-- MTA's hourly subway ridership summed per station complex and day.
select week, date, complex_id, {{ latest('complex_name', 'transit_timestamp') }} as complex_name,
       sum(ridership) as entries_official, count(distinct transit_timestamp) as hours_with_riders
from {{ ref('stg_official_hourly') }}
group by week, date, complex_id
