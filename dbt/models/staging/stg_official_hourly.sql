-- The run's weeks of MTA's hourly ridership (subway only), each row a complex, hour,
-- payment method and fare class; the week is the Saturday on or before the hour's date.
select {{ week_of('cast(transit_timestamp as date)') }} as week,
       cast(transit_timestamp as date) as date,
       cast(transit_timestamp as timestamp) as transit_timestamp,
       cast(station_complex_id as {{ dbt.type_string() }}) as complex_id,
       station_complex as complex_name, borough, payment_method, fare_class_category,
       ridership, transfers, latitude, longitude
from {{ lake_relation('official_hourly') }}
where lower(transit_mode) = 'subway'
  and {{ in_run_weeks(week_of('cast(transit_timestamp as date)')) }}
