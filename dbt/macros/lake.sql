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
      {%- set files = [env_var('MTA_LAKE_URL', 'data/lake') ~ '/' ~ lake_datasets()[dataset]['glob']] -%}
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
