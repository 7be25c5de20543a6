"""The ridership dashboard: the warehouse's system and station series in a browser.

Dash (Plotly), because it is one Python process beside the pipeline: the page, its
callbacks and the charts' JavaScript are served by that process from the installed
package (no CDN, no Node build, works offline), and its queries are plain DuckDB. Streamlit
would rerun the whole script per interaction; Evidence needs Node and a build step.

Run ``python -m dashboard`` (``./mta dashboard``): 127.0.0.1, port ``MTA_DASHBOARD_PORT``
(default 8050), reading ``MTA_WAREHOUSE`` read-only.
"""
