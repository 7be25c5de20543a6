-- Turnstile (unit, C/A) to MTA's station complex, the hourly data's key.
select unit, ca, cast(complex_id as {{ dbt.type_string() }}) as complex_id, complex_name, source
from {{ lake_relation('station_complexes') }}
