-- The whole system by day: turnstile entries beside MTA's daily subway estimate, on every
-- day of the loaded weeks (turnstile or hourly); the ratio only on complete days.
with turnstile as (
    select r.date, sum(r.entries) as entries_turnstile, sum(r.exits) as exits_turnstile,
           sum(r.intervals_dropped) as intervals_dropped,
           sum(r.intervals_used + r.intervals_capped + r.intervals_dropped) as intervals,
           {{ all_true("r.complete") }} as complete
    from {{ ref('ridership_daily') }} r group by r.date
),
days as (
    select date from turnstile
    union distinct
    select distinct date from {{ ref('fct_official_complex_daily') }}
)
select d.date, t.entries_turnstile, t.exits_turnstile, o.entries_official,
       case when t.complete and o.entries_official > 0
            then t.entries_turnstile / o.entries_official end as turnstile_over_official,
       coalesce(t.complete, false) as turnstile_complete,
       t.intervals_dropped, t.intervals
from days d
left join turnstile t on t.date = d.date
left join {{ ref('official_daily_estimate') }} o on o.date = d.date
