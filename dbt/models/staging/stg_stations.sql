-- The run's weeks of the station dimension per (unit, C/A): the key's name in both eras
-- (wide files by MTA's key, 11-column files by their own names where the key lacks them).
select cast(week as date) as week, unit, ca, station, linename, division, station_in_file, source
from {{ lake_relation('stations') }}
where {{ in_run_weeks('cast(week as date)') }}
