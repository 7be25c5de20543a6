{{ config(materialized='view') }}
-- One row per station and day, the parts of a day that spans two weeks' files summed (the
-- relation docs/data.md's queries use). complete: every interval of the day is in the warehouse.
select r.date, r.station_id, r.unit, r.station, r.linename, r.division,
       sum(r.entries) as entries, sum(r.exits) as exits,
       sum(r.intervals_used) as intervals_used, sum(r.intervals_capped) as intervals_capped,
       sum(r.intervals_dropped) as intervals_dropped, max(r.turnstiles) as turnstiles,
       max(d.complete) as complete
from {{ ref('fct_ridership_daily') }} r
join {{ ref('turnstile_days') }} d on d.date = r.date
group by r.date, r.station_id, r.unit, r.station, r.linename, r.division
