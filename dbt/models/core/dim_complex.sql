-- One row per MTA station complex: from the unit crosswalk and from the hourly data.
with named as (
    select complex_id, complex_name, 1 as preference from {{ ref('fct_official_complex_daily') }}
    union all
    select complex_id, complex_name, 2 as preference from {{ ref('complex_crosswalk') }}
)
select complex_id, {{ latest('complex_name', '-preference') }} as complex_name
from named
where complex_id is not null
group by complex_id
