"""How downstream assets load the weekly objects, one week at a time (the lake IO manager's part).

The turnstile assets commit their weeks themselves, inside their step, only after the
week has passed every blocking check (``turnstile/week.py``); an IO manager's
``handle_output`` runs after the whole step, too late for that. What the IO manager
does is hand a downstream asset its upstream weeks as a ``WeekFiles`` mapping
(week → local file), fetched when a week is read and dropped when the next one is, so a
range of any length keeps at most one upstream object per reader on local disk. Weeks
with no object (the week before the first one, say) are simply absent.

Each asset declares where its weeks live in its definition metadata
(``lake/dataset``, ``lake/extension``); nothing is pickled. The ``LakeIOManager`` resource
(``resources.py``, beside the ``Lake`` it reads from) reads that metadata and hands out a
``WeekFiles``; nothing here imports Dagster.
"""


import shutil
import tempfile
import threading
from collections import OrderedDict
from collections.abc import Iterator, Mapping
from pathlib import Path

from mta_assets.storage.commit import week_key
from mta_assets.storage.lake_client import LakeClient

DATASET_KEY = "lake/dataset"
EXTENSION_KEY = "lake/extension"
# Weeks kept on local disk at once per reader: a reader working on two weeks at a time
# reads each week and the one before it.
_KEEP_FETCHED = 4


def lake_metadata(dataset: str, extension: str) -> dict[str, str]:
    """Definition metadata telling the IO manager where an asset's weeks live."""
    return {DATASET_KEY: dataset, EXTENSION_KEY: extension}


class WeekFiles(Mapping[str, Path]):
    """Upstream weeks as local files, fetched on access; only the last few weeks read stay on disk."""

    def __init__(self, lake: LakeClient, dataset: str, extension: str, weeks: list[str]):
        self._lake = lake
        self._dataset = dataset
        self._extension = extension
        self._keys = {week: key for week in weeks if (key := self._find(week)) is not None}
        self._lock = threading.Lock()
        self._fetched: OrderedDict[str, tuple[Path, Path | None]] = OrderedDict()  # week -> (file, its folder)

    def _find(self, week: str) -> str | None:
        # The week's manifest names its current object (storage/commit.py); a week
        # committed before manifests is found at its fixed key.
        return week_key(self._lake, "turnstile", self._dataset, week, self._extension)

    def __getitem__(self, week: str) -> Path:
        return self.file(week)[0]

    def file(self, week: str) -> tuple[Path, bool]:
        """(the week's local file, whether it is the lake's own object: a local lake, no copy)."""
        key = self._keys[week]
        with self._lock:
            if week not in self._fetched:
                folder = Path(tempfile.mkdtemp(prefix="mta-load-"))
                path = self._lake.fetch(key, folder)
                if path.parent != folder:  # a local lake hands out the object itself, no copy
                    shutil.rmtree(folder, ignore_errors=True)
                    folder = None
                self._fetched[week] = (path, folder)
                while len(self._fetched) > _KEEP_FETCHED:
                    _, (_, old) = self._fetched.popitem(last=False)
                    if old is not None:
                        shutil.rmtree(old, ignore_errors=True)
            self._fetched.move_to_end(week)
            path, folder = self._fetched[week]
            return path, folder is None

    def _drop(self) -> None:
        for _, folder in self._fetched.values():
            if folder is not None:
                shutil.rmtree(folder, ignore_errors=True)
        self._fetched.clear()

    def __iter__(self) -> Iterator[str]:
        return iter(self._keys)

    def __len__(self) -> int:
        return len(self._keys)

    def __contains__(self, week: object) -> bool:
        return week in self._keys

    def __del__(self) -> None:
        self._drop()
