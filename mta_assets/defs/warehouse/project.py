"""The dbt project (``dbt/`` at the repository root) and its manifest, the dagster-dbt way.

A missing or stale manifest (in a fresh clone, or after an edit under ``dagster dev``) is
produced at load by ``dbt parse``, which reads nothing over the network (no packages, no
version check, no usage statistics); the image parses at build. A file lock keeps parallel
test workers or code servers from parsing into one folder at once. dbt is a command here,
from an environment of its own (``dbt_executable``).
"""

import fcntl
import json
import logging
import os
import shutil
import sys
from pathlib import Path

import dagster as dg
from dagster_dbt import DbtCliResource, DbtProject

from mta_assets.storage.duckdb_file import warehouse_path


def dbt_executable() -> str:
    """The dbt command: MTA_DBT_EXECUTABLE, else dbt's own environment in the venv's folder
    (``make setup``: .venv/dbt; its ``dbt-for-dagster``, which answers ``dbt --version``
    without starting dbt, ``dbt/dbt-for-dagster`` says why), else a dbt beside this
    interpreter or on PATH.

    dbt lives in an environment of its own (dbt/requirements.txt): Dagster runs it and never
    imports it, so no Dagster process pays dbt-core's import (1.2 s, 83 MB).
    """
    configured = os.environ.get("MTA_DBT_EXECUTABLE", "").strip()
    if configured:
        return configured
    own = Path(sys.prefix) / "dbt" / "bin"
    for candidate in (own / "dbt-for-dagster", own / "dbt", Path(sys.executable).with_name("dbt")):
        if candidate.is_file():
            return str(candidate)
    return shutil.which("dbt") or "dbt"


class _NoInProcessAdapter(logging.Filter):
    """Drops dagster-dbt's warning that it could not build dbt's adapter in this process.

    For dbt-core 1.x, ``DbtCliResource.cli`` also builds dbt's adapter in the calling process
    (for column metadata and row counts, which this project does not fetch); with dbt in an
    environment of its own that import fails, and dagster-dbt logs a warning with a
    traceback on every invocation. dagster-dbt has no setting to skip it (its engine
    detection assumes an in-process dbt-core for dbt 1.x: dagster-io/dagster#34215, and
    #33924 for the message); the dbt command itself is unaffected.
    """

    MESSAGE = "An error was encountered when creating a handle to the dbt adapter in Dagster."

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        return not (record.getMessage() == self.MESSAGE and isinstance(error, ImportError))


dg.get_dagster_logger().addFilter(_NoInProcessAdapter())


# Beside the package in a clone; the image sets MTA_DBT_PROJECT_DIR (the package is installed there).
DBT_DIR = Path(os.environ.get("MTA_DBT_PROJECT_DIR") or Path(__file__).resolve().parents[3] / "dbt")

warehouse_project = DbtProject(project_dir=DBT_DIR, profiles_dir=DBT_DIR)


def _stale() -> bool:
    """No manifest, or a project file changed after it was written."""
    manifest = warehouse_project.manifest_path
    if not manifest.exists():
        return True
    written = manifest.stat().st_mtime
    sources = [DBT_DIR / "dbt_project.yml", DBT_DIR / "profiles.yml"]
    for folder in ("models", "macros", "tests"):
        sources += [path for path in (DBT_DIR / folder).rglob("*") if path.suffix in (".sql", ".yml")]
    return any(path.stat().st_mtime > written for path in sources)


def dbt_target() -> str:
    """The dbt target of this deployment (profiles.yml): duckdb or bigquery."""
    return os.environ.get("MTA_DBT_TARGET", "").strip() or "duckdb"


def dbt_vars(database: Path, weeks: list[str] | None = None) -> list[str]:
    """The vars of a dbt command on ``database``: that file's path, and ``weeks`` for BigQuery.

    The same at parse (below) and at a DuckDB build (``assets.py``), so dbt's partial parsing
    keeps the parse done here: dbt parses the whole project again whenever vars change. The
    run's weeks and files therefore go in a file (``write_run_file``), not in vars; BigQuery
    reads no local file, so its weeks stay a var.
    """
    values: dict[str, object] = {"warehouse": str(database)}
    if weeks is not None:
        values["weeks"] = weeks
    return ["--vars", json.dumps(values)]


def write_run_file(target: Path, weeks: list[str], files: dict[str, list[str]]) -> Path:
    """The run's weeks and, per lake dataset, their local Parquet files, where the models
    read them (``dbt/macros/run.sql``): ``mta_run.json`` in the invocation's target folder."""
    path = target / "mta_run.json"
    rows = [{"dataset": dataset, "path": file} for dataset, paths in files.items() for file in paths]
    path.write_text(json.dumps({"weeks": weeks, "files": rows}))
    return path


def keep_parse_state(invocation_target: Path) -> None:
    """Keep the parse state a build wrote (``partial_parse.msgpack``) for the next build.

    dagster-dbt gives each command a target folder of its own, seeded with the project's
    parse state (dagster-io/dagster#14762), but never keeps the state the command writes.
    A state parsed with other vars (another warehouse file, say) is no use to dbt, which
    then parses the whole project on every build (1.6 s). dbt checks a state before it uses
    it (files, vars, profile), so a state from any build is safe; replaced atomically.
    """
    state = invocation_target / "partial_parse.msgpack"
    if not state.is_file():
        return
    kept = warehouse_project.project_dir / warehouse_project.target_path / state.name
    partial = kept.with_name(f".{state.name}.{os.getpid()}")
    shutil.copyfile(state, partial)
    os.replace(partial, kept)


def prepared_project() -> DbtProject:
    """The project with a loadable, current manifest: parsed now if it is missing or a project
    file changed after it (which also covers ``dagster dev``'s edits).

    dagster-dbt's own preparer runs ``dbt`` from PATH, which is not where dbt lives here, so
    the parse is run with ``dbt_executable()``, the way the preparer would, and with the
    vars of this deployment's warehouse, so that its builds parse only what changed.
    """
    if _stale():
        lock_path = DBT_DIR / "target" / ".prepare.lock"
        lock_path.parent.mkdir(parents=True, exist_ok=True)
        with lock_path.open("w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if _stale():
                DbtCliResource(project_dir=warehouse_project, dbt_executable=dbt_executable()).cli(
                    ["parse", "--quiet", *dbt_vars(warehouse_path())], target_path=warehouse_project.target_path
                ).wait()
    return warehouse_project
