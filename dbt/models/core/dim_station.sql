-- One row per station as ridership counts it (macros/station_id.sql), with its booths, its complex and the weeks it was seen.
with pairs as (
    select s.*, {{ station_id('s.') }} as station_id from {{ ref('station_weeks') }} s
),
complexes as (
    select unit, ca, min(complex_id) as complex_id from {{ ref('complex_crosswalk') }} group by unit, ca
)
select p.station_id, p.unit, p.station, p.linename, p.division,
       string_agg(distinct p.ca, ',' order by p.ca) as booths,
       min(c.complex_id) as complex_id,
       min(p.week) as first_week, max(p.week) as last_week
from pairs p
left join complexes c on c.unit = p.unit and c.ca = p.ca
group by p.station_id, p.unit, p.station, p.linename, p.division
