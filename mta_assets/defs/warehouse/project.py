"""The dbt project (``dbt/`` at the repository root) and its manifest, the dagster-dbt way.

``dagster dev`` re-parses the project at load (``prepare_if_dev``); anywhere else (CI, a
fresh clone, the Docker image) a missing manifest is produced once by ``dbt parse``, which
reads nothing over the network (no packages, no version check, no usage statistics). A
file lock keeps parallel test workers or code servers from parsing into one folder at once.
"""

import fcntl
from pathlib import Path

from dagster_dbt import DbtProject

DBT_DIR = Path(__file__).resolve().parents[3] / "dbt"

warehouse_project = DbtProject(project_dir=DBT_DIR, profiles_dir=DBT_DIR)


def prepared_project() -> DbtProject:
    """The project with a loadable manifest (parsed now if dev, or if there is none yet)."""
    warehouse_project.prepare_if_dev()
    if not warehouse_project.manifest_path.exists():
        lock_path = DBT_DIR / "target" / ".prepare.lock"
        lock_path.parent.mkdir(parents=True, exist_ok=True)
        with lock_path.open("w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if not warehouse_project.manifest_path.exists():
                warehouse_project.preparer.prepare(warehouse_project)
    return warehouse_project
