-- Turnstile (unit, C/A) to station complex, as the lake has it.
select * from {{ ref('stg_station_complexes') }}
