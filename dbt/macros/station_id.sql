{#- A station as ridership counts it: unit, station name, lines and division (a unit can
serve two stations, and one name two divisions, e.g. R022 34 ST-HERALD SQ BMT and IND). -#}
{% macro station_id(prefix='') %}
  {%- set cols = ['unit', 'station', 'linename', 'division'] -%}
  {%- for col in cols -%}coalesce({{ prefix }}{{ col }}, '?'){{ " || ' | ' || " if not loop.last }}{%- endfor -%}
{% endmacro %}
