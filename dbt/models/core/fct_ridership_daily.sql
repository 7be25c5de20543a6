{{ config(**weekly_incremental()) }}
-- Entries and exits per station and day, as each week's file has them: a day at a week
-- boundary has one row in each of the two weeks (ridership_daily sums them).
select week, date, {{ station_id() }} as station_id, unit, station, linename, division,
       entries, exits, intervals_used, intervals_capped, intervals_dropped, turnstiles
from {{ ref('stg_ridership') }}
