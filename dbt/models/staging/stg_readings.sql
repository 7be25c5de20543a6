-- The run's weeks of validated readings, as the turnstile step wrote them.
select ca, unit, scp, station, linename, division, cast(reading_time as timestamp) as reading_time,
       "desc", entries, exits, cast(week as date) as week, source_file
from {{ lake_relation('readings') }}
where {{ in_run_weeks('cast(week as date)') }}
