#!/usr/bin/env bash
# Materialize one week end to end on the embedded defaults: a local lake folder
# (./data/lake) and a project-local DAGSTER_HOME. Unless MTA_SOURCE_URL is set,
# a synthetic week is generated and served by the loopback mirror, so no network
# or cloud account is needed.
set -euo pipefail
cd "$(dirname "$0")/.."
week="${1:-2023-12-30}"
bin=.venv/bin
export DAGSTER_HOME="${DAGSTER_HOME:-$PWD/.dagster_home}"
export MTA_LAKE_URL="${MTA_LAKE_URL:-$PWD/data/lake}"
mirror_pid=""
cleanup() { [ -n "$mirror_pid" ] && kill "$mirror_pid" 2>/dev/null || true; }
trap cleanup EXIT
if [ -z "${MTA_SOURCE_URL:-}" ]; then
  # A free loopback port unless MIRROR_PORT says which.
  port="${MIRROR_PORT:-$("$bin/python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')}"
  "$bin/python" -m mta_assets.devtools.synthetic --out data/mirror --week "$week"
  "$bin/python" -m mta_assets.devtools.mirror data/mirror --port "$port" >/dev/null &
  mirror_pid=$!
  export MTA_SOURCE_URL="http://127.0.0.1:$port"
  "$bin/python" -c "
import socket, time
for _ in range(100):
    with socket.socket() as s:
        if s.connect_ex(('127.0.0.1', $port)) == 0:
            break
    time.sleep(0.1)
"
fi
echo "source: $MTA_SOURCE_URL  lake: $MTA_LAKE_URL  DAGSTER_HOME: $DAGSTER_HOME"
"$bin/dagster" asset materialize -m mta_assets.definitions --select 'turnstile_csv*' --partition "$week"
echo "lake objects:"
find "$MTA_LAKE_URL" -type f -newer pyproject.toml 2>/dev/null | sort || true
