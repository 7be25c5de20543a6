-- The run's weeks of entries and exits per station and day; a day at a week boundary
-- (the Friday, midpoint rule) has a part in two weeks' files.
select cast(week as date) as week, cast(date as date) as date, unit, station, linename, division,
       entries, exits, intervals_used, intervals_capped, intervals_dropped, turnstiles
from {{ lake_relation('ridership') }}
where {{ in_run_weeks('cast(week as date)') }}
