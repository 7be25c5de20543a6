"""``python -m dashboard``: serve the dashboard on 127.0.0.1:$MTA_DASHBOARD_PORT (default 8050)."""

import os

from dashboard.app import create_app
from dashboard.data import Warehouse

DEFAULT_PORT = 8050
DEFAULT_WAREHOUSE = "data/warehouse.duckdb"  # the pipeline's default (storage/duckdb_file.py)


def main() -> None:
    raw = os.environ.get("MTA_DASHBOARD_PORT", "").strip() or str(DEFAULT_PORT)
    if not raw.isdigit() or not 1 <= int(raw) <= 65535:
        raise SystemExit(f"MTA_DASHBOARD_PORT={raw!r} is not a port number (1..65535)")
    host = os.environ.get("MTA_DASHBOARD_HOST", "127.0.0.1")
    database = os.environ.get("MTA_WAREHOUSE", "").strip() or DEFAULT_WAREHOUSE
    print(f"dashboard: http://{host}:{raw}/ over {database} (read-only)", flush=True)
    create_app(Warehouse(database)).run(host=host, port=int(raw), debug=False)


if __name__ == "__main__":
    main()
