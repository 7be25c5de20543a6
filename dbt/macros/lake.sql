{#- Where staging reads a lake dataset from.

DuckDB: the Parquet files Dagster fetched for this run's weeks (mta_run(), or the var
lake_files), else every file of the local lake (env MTA_LAKE_URL). Files are read one week
at a time into tables, so a corrupted object fails the run that reads it (DuckDB's error
names the file), never a later query. BigQuery: the external table over the lake (macros/bigquery.sql).
source() is called in both cases so that dbt (and Dagster's lineage) sees the dependency. -#}
{% macro lake_relation(dataset) %}
  {%- set relation = source('lake', dataset) -%}
  {%- if target.type != 'duckdb' -%}
    {{ relation }}
  {%- else -%}
    {%- set run = mta_run() -%}
    {%- if run is not none -%}
      {#- Every dataset of the run is in the file; one without objects for these weeks is empty. -#}
      {%- set files = run['files'].get(dataset, []) -%}
    {%- else -%}
      {%- set files = var('lake_files', {}).get(dataset) -%}
    {%- endif -%}
    {%- if files is none -%}
      {%- set files = lake_files_by_hand(dataset) -%}
    {%- endif -%}
    {%- if files | length == 0 -%}
      {{ empty_relation(lake_datasets()[dataset]['columns']) }}
    {%- else -%}
      read_parquet([{%- for file in files -%}'{{ file | replace("'", "''") }}'{{ ", " if not loop.last }}{%- endfor -%}], union_by_name = true)
    {%- endif -%}
  {%- endif -%}
{% endmacro %}

{#- A relation with the dataset's columns and no rows: a week without that dataset in the lake. -#}
{% macro empty_relation(columns) %}
  (select {% for name, type in columns.items() %}cast(null as {{ type }}) as {{ adapter.quote(name) }}{{ ", " if not loop.last }}{% endfor %} where false)
{%- endmacro %}

{#- The weeks this run replaces, as a SQL filter on a date column (true when none are given). -#}
{% macro in_run_weeks(column) %}
  {%- set run = mta_run() -%}
  {%- set weeks = run['weeks'] if run is not none else var('weeks', []) -%}
  {%- if weeks | length == 0 -%}
    true
  {%- else -%}
    {{ column }} in ({% for week in weeks %}date '{{ week }}'{{ ", " if not loop.last }}{% endfor %})
  {%- endif -%}
{% endmacro %}

{#- The Saturday starting the week of a date (weeks run Saturday to Friday, like MTA's files). -#}
{% macro week_of(day) %}
  {%- if target.type == 'bigquery' -%}
    date_trunc({{ day }}, week(saturday))
  {%- else -%}
    cast({{ day }} - ((cast(dayofweek({{ day }}) as integer) + 1) % 7) * interval 1 day as date)
  {%- endif -%}
{% endmacro %}

{#- A build by hand (no run file): every week's current object of the dataset in the local lake
(MTA_LAKE_URL). A weekly dataset committed through manifests is read where its week's manifest
points: its folder also holds the generation a commit replaced (kept for readers in flight),
which a glob would read twice. Objects at the fixed keys of a lake written before manifests
are read too, unless a manifest names a file of the same name (the week was committed since).
None while dbt parses (lake_relation then reads nothing). -#}
{% macro lake_files_by_hand(dataset) %}
  {%- set root = env_var('MTA_LAKE_URL', 'data/lake').rstrip('/') -%}
  {%- set spec = lake_datasets()[dataset] -%}
  {%- set fixed = (root ~ '/' ~ spec['glob']) | replace("'", "''") -%}
  {%- if not execute -%}
    {{ return([]) }}
  {%- endif -%}
  {%- if 'manifests' not in spec -%}
    {{ return([root ~ '/' ~ spec['glob']]) }}
  {%- endif -%}
  {%- set area, name = spec['manifests'] -%}
  {%- set manifests = (root ~ '/' ~ area ~ '/manifests/*/*.json') | replace("'", "''") -%}
  {%- set current = "select '" ~ (root | replace("'", "''")) ~ "/' || json_extract_string(datasets, '$." ~ name ~ ".key') as file"
      ~ " from read_json('" ~ manifests ~ "', columns = {datasets: 'json'})"
      ~ " where json_extract_string(datasets, '$." ~ name ~ ".key') is not null" -%}
  {%- if run_query("select count(*) from glob('" ~ manifests ~ "')").columns[0].values()[0] == 0 -%}
    {%- set current = "select null::varchar as file where false" -%}
  {%- endif -%}
  {%- set query = "with current as (" ~ current ~ ") select file from current union all"
      ~ " select file from glob('" ~ fixed ~ "') where parse_filename(file) not in (select parse_filename(file) from current)"
      ~ " order by file" -%}
  {{ return(run_query(query).columns[0].values() | list) }}
{% endmacro %}
