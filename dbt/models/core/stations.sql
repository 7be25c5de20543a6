{{ config(materialized='view') }}
-- One row per (unit, C/A): its latest name and the weeks it was seen (the relation docs/data.md's queries use).
select unit, ca,
       {{ latest('station', 'week') }} as station, {{ latest('linename', 'week') }} as linename,
       {{ latest('division', 'week') }} as division, {{ latest('station_in_file', 'week') }} as station_in_file,
       {{ latest('source', 'week') }} as source, min(week) as first_week, max(week) as last_week
from {{ ref('station_weeks') }}
group by unit, ca
