-- One series per station complex and day: turnstile entries (units mapped to complexes)
-- beside MTA's hourly ridership; source says which one the day has.
with station_complex as (
    select station_id, complex_id from {{ ref('dim_station') }} where complex_id is not null
),
turnstile as (
    select r.date, s.complex_id, sum(r.entries) as entries_turnstile, {{ all_true("r.complete") }} as complete
    from {{ ref('ridership_daily') }} r join station_complex s on s.station_id = r.station_id
    group by r.date, s.complex_id
),
official as (
    select date, complex_id, sum(entries_official) as entries_official
    from {{ ref('fct_official_complex_daily') }} group by date, complex_id
),
joined as (
    select coalesce(t.date, o.date) as date, coalesce(t.complex_id, o.complex_id) as complex_id,
           t.entries_turnstile, o.entries_official, t.complete
    from turnstile t full outer join official o on o.date = t.date and o.complex_id = t.complex_id
)
select j.date, j.complex_id, c.complex_name, j.entries_turnstile, j.entries_official,
       case when j.entries_official is not null then 'official' else 'turnstile' end as source,
       case when j.complete and j.entries_official > 0
            then j.entries_turnstile / j.entries_official end as turnstile_over_official
from joined j left join {{ ref('dim_complex') }} c on c.complex_id = j.complex_id
