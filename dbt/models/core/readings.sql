{{ config(**weekly_incremental()) }}
-- The validated readings, loaded a week at a time (README "Warehouse").
select * from {{ ref('stg_readings') }}
