{#- What this build covers: its weeks and, per lake dataset, the Parquet files of those weeks.

Dagster writes them to mta_run.json in the invocation's own target folder (dbt's
DBT_TARGET_PATH) before each build, as {"weeks": [...], "files": [{"dataset", "path"}]}.
They are read here when a node executes, never while dbt parses: passed as --vars, they
would change every run, and any change of vars makes dbt parse the whole project again
(1.6 s a run, docs/benchmark.md); a command line also stops at 128 KiB, about 300 weeks
of file names. None while parsing, for a build by hand (no such file) and on BigQuery,
which reads no local file (its weeks come as the var `weeks`). -#}
{% macro mta_run() %}
  {%- set folder = env_var('DBT_TARGET_PATH', '') if execute and target.type == 'duckdb' else '' -%}
  {%- if folder == '' -%}
    {{ return(none) }}
  {%- endif -%}
  {%- set path = (folder ~ '/mta_run.json') | replace("'", "''") -%}
  {%- if run_query("select count(*) from glob('" ~ path ~ "')").columns[0].values()[0] == 0 -%}
    {{ return(none) }}
  {%- endif -%}
  {%- set source = "read_json('" ~ path ~ "', columns = {weeks: 'varchar[]', files: 'struct(dataset varchar, path varchar)[]'})" -%}
  {%- set weeks = run_query("select unnest(weeks) from " ~ source).columns[0].values() | list -%}
  {%- set files = {} -%}
  {%- for row in run_query("select f.dataset, f.path from (select unnest(files) as f from " ~ source ~ ")") -%}
    {%- do files.setdefault(row[0], []).append(row[1]) -%}
  {%- endfor -%}
  {{ return({'weeks': weeks, 'files': files}) }}
{% endmacro %}
