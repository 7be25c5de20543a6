"""The dbt project (``dbt/`` at the repository root) and its manifest, the dagster-dbt way.

``dagster dev`` re-parses the project at load (``prepare_if_dev``); anywhere else (CI, a
fresh clone, the Docker image) a missing or stale manifest is produced by ``dbt parse``, which
reads nothing over the network (no packages, no version check, no usage statistics). A
file lock keeps parallel test workers or code servers from parsing into one folder at once.
"""

import fcntl
import os
from pathlib import Path

from dagster_dbt import DbtProject

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
    """The project with a loadable, current manifest (parsed now if dev, missing or stale)."""
    warehouse_project.prepare_if_dev()
    if _stale():
        lock_path = DBT_DIR / "target" / ".prepare.lock"
        lock_path.parent.mkdir(parents=True, exist_ok=True)
        with lock_path.open("w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if _stale():
                warehouse_project.preparer.prepare(warehouse_project)
    return warehouse_project
