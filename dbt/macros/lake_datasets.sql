{#- The lake's datasets: where their objects are under the lake (for runs without the var
lake_files: the fixed keys, and for a weekly dataset committed through manifests, which
manifests and which of their datasets; macros/lake.sql) and their columns (for a week that
has no object of that dataset yet).
The Parquet schemas are the writers' (mta/parse.py, mta/stations.py, mta/ridership.py and
the official ridership assets). -#}
{% macro lake_datasets() %}
  {{ return({
    'readings': {'glob': 'turnstile/readings/*/*.parquet', 'manifests': ['turnstile', 'readings'], 'columns': {
        'ca': 'varchar', 'unit': 'varchar', 'scp': 'varchar', 'station': 'varchar', 'linename': 'varchar',
        'division': 'varchar', 'reading_time': 'timestamp', 'desc': 'varchar', 'entries': 'bigint',
        'exits': 'bigint', 'week': 'date', 'source_file': 'varchar'}},
    'stations': {'glob': 'turnstile/stations/*/*.parquet', 'columns': {
        'unit': 'varchar', 'ca': 'varchar', 'station': 'varchar', 'linename': 'varchar', 'division': 'varchar',
        'station_in_file': 'varchar', 'source': 'varchar', 'week': 'date'}},
    'ridership': {'glob': 'turnstile/ridership/*/*.parquet', 'columns': {
        'week': 'date', 'date': 'date', 'unit': 'varchar', 'station': 'varchar', 'linename': 'varchar',
        'division': 'varchar', 'entries': 'bigint', 'exits': 'bigint', 'intervals_used': 'bigint',
        'intervals_capped': 'bigint', 'intervals_dropped': 'bigint', 'turnstiles': 'bigint'}},
    'official_hourly': {'glob': 'official/hourly/*/*.parquet', 'manifests': ['official', 'hourly'], 'columns': {
        'transit_timestamp': 'timestamp', 'transit_mode': 'varchar', 'station_complex_id': 'varchar',
        'station_complex': 'varchar', 'borough': 'varchar', 'payment_method': 'varchar',
        'fare_class_category': 'varchar', 'ridership': 'double', 'transfers': 'double',
        'latitude': 'double', 'longitude': 'double'}},
    'official_daily': {'glob': 'official/daily/daily_ridership.parquet', 'columns': {
        'date': 'date', 'subways_total_estimated_ridership': 'bigint',
        'subways_of_comparable_pre_pandemic_day': 'double', 'source_dataset': 'varchar'}},
    'station_complexes': {'glob': 'official/stations/station_complexes.parquet', 'columns': {
        'unit': 'varchar', 'ca': 'varchar', 'complex_id': 'varchar', 'complex_name': 'varchar',
        'source': 'varchar'}},
  }) }}
{% endmacro %}
