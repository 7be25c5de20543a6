"""The dbt project (``dbt/`` at the repository root) and its manifest, the dagster-dbt way.

A missing or stale manifest (in a fresh clone, or after an edit under ``dagster dev``) is
produced at load by ``dbt parse``, which reads nothing over the network (no packages, no
version check, no usage statistics); the image parses at build. A file lock keeps parallel
test workers or code servers from parsing into one folder at once. dbt is a command here,
from an environment of its own (``dbt_executable``).
"""

import fcntl
import logging
import os
import shutil
import sys
from pathlib import Path

import dagster as dg
from dagster_dbt import DbtCliResource, DbtProject


def dbt_executable() -> str:
    """The dbt command: MTA_DBT_EXECUTABLE, else dbt's own environment in the venv's folder
    (``make setup``: .venv/dbt), else a dbt beside this interpreter or on PATH.

    dbt lives in an environment of its own (dbt/requirements.txt): Dagster runs it and never
    imports it, so no Dagster process pays dbt-core's import (1.2 s, 83 MB).
    """
    configured = os.environ.get("MTA_DBT_EXECUTABLE", "").strip()
    if configured:
        return configured
    for candidate in (Path(sys.prefix) / "dbt" / "bin" / "dbt", Path(sys.executable).with_name("dbt")):
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


def prepared_project() -> DbtProject:
    """The project with a loadable, current manifest: parsed now if it is missing or a project
    file changed after it (which also covers ``dagster dev``'s edits).

    dagster-dbt's own preparer runs ``dbt`` from PATH, which is not where dbt lives here, so
    the parse is run with ``dbt_executable()``, the way the preparer would.
    """
    if _stale():
        lock_path = DBT_DIR / "target" / ".prepare.lock"
        lock_path.parent.mkdir(parents=True, exist_ok=True)
        with lock_path.open("w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if _stale():
                DbtCliResource(project_dir=warehouse_project, dbt_executable=dbt_executable()).cli(
                    ["parse", "--quiet"], target_path=warehouse_project.target_path
                ).wait()
    return warehouse_project
