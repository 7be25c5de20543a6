-- Each station's average entries per day of the week, complete days only.
with per_day as (
    select date, station_id, station, sum(entries) as entries
    from {{ ref('ridership_daily') }} where complete group by date, station_id, station
)
select station_id, station, {{ iso_dow('date') }} as iso_day, {{ day_name('date') }} as day,
       avg(entries) as mean_entries, count(*) as days
from per_day
group by station_id, station, 3, 4
