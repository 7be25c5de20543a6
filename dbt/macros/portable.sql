{#- A week-partitioned incremental model: the run's weeks replaced, the others kept, so loading
a week twice changes nothing. DuckDB: delete+insert on week; BigQuery: the week's partition
overwritten. -#}
{% macro weekly_incremental() %}
  {%- if target.type == 'bigquery' -%}
    {{ return({'materialized': 'incremental', 'incremental_strategy': 'insert_overwrite',
               'partition_by': {'field': 'week', 'data_type': 'date', 'granularity': 'day'},
               'on_schema_change': 'append_new_columns'}) }}
  {%- else -%}
    {{ return({'materialized': 'incremental', 'incremental_strategy': 'delete+insert', 'unique_key': 'week',
               'on_schema_change': 'append_new_columns'}) }}
  {%- endif -%}
{% endmacro %}

{#- The value of column at the greatest order_by in the group (the latest name, say). -#}
{% macro latest(column, order_by) %}
  {%- if target.type == 'bigquery' -%}
    array_agg({{ column }} ignore nulls order by {{ order_by }} desc limit 1)[safe_offset(0)]
  {%- else -%}
    arg_max({{ column }}, {{ order_by }})
  {%- endif -%}
{% endmacro %}

{#- Day of week 1 (Monday) to 7 (Sunday), and its English name. -#}
{% macro iso_dow(day) %}
  {%- if target.type == 'bigquery' -%}mod(extract(dayofweek from {{ day }}) + 5, 7) + 1{%- else -%}isodow({{ day }}){%- endif -%}
{% endmacro %}
{% macro day_name(day) %}
  {%- if target.type == 'bigquery' -%}format_date('%A', {{ day }}){%- else -%}dayname({{ day }}){%- endif -%}
{% endmacro %}

{#- True when every value of the group is true. -#}
{% macro all_true(expression) %}
  {%- if target.type == 'bigquery' -%}logical_and({{ expression }}){%- else -%}bool_and({{ expression }}){%- endif -%}
{% endmacro %}
