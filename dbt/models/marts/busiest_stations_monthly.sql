-- Stations (name and lines, as docs/data.md's query groups them) by entries per month, ranked.
select {{ dbt.date_trunc('month', 'date') }} as month, station, linename,
       sum(entries) as entries,
       rank() over (partition by {{ dbt.date_trunc('month', 'date') }} order by sum(entries) desc) as rank_in_month
from {{ ref('ridership_daily') }}
group by 1, station, linename
