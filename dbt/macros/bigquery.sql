{#- BigQuery: the lake's Parquet objects as external tables (nothing copied), created before
each run (on-run-start) so new weeks in the lake appear at once. The lake is MTA_LAKE_URL,
gs://BUCKET[/PREFIX]. -#}
{% macro create_lake_external_tables() %}
  {%- if target.type != 'bigquery' -%}{{ return('') }}{%- endif -%}
  {%- set lake = env_var('MTA_LAKE_URL', 'gs://your-bucket') -%}
  {%- if not lake.startswith('gs://') -%}
    {{ exceptions.raise_compiler_error("BigQuery reads the lake from GCS: MTA_LAKE_URL must be gs://BUCKET[/PREFIX], not " ~ lake) }}
  {%- endif -%}
  {%- set statements = [] -%}
  {%- for dataset, spec in lake_datasets().items() -%}
    {%- do statements.append(
      "create or replace external table `" ~ target.project ~ "." ~ target.schema ~ ".lake_" ~ dataset ~ "`"
      ~ " options (format = 'PARQUET', uris = ['" ~ lake.rstrip('/') ~ "/" ~ spec['glob'].replace('/*/*', '/*') ~ "'])"
    ) -%}
  {%- endfor -%}
  {{ return(statements | join(";\n")) }}
{% endmacro %}
