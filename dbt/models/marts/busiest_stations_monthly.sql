-- Stations by entries per month, ranked (the README's "busiest stations of a month").
select {{ dbt.date_trunc('month', 'date') }} as month, station_id, station, linename,
       sum(entries) as entries,
       rank() over (partition by {{ dbt.date_trunc('month', 'date') }} order by sum(entries) desc) as rank_in_month
from {{ ref('ridership_daily') }}
group by 1, station_id, station, linename
