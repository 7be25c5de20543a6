{{ config(**weekly_incremental()) }}
-- The validated readings, loaded a week at a time (docs/data.md "The warehouse").
select * from {{ ref('stg_readings') }}
