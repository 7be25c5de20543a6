"""The lake IO manager: how downstream assets load the weekly objects, one week at a time.

The turnstile assets commit their weeks themselves, inside their step, only after the
week has passed every blocking check (``turnstile/week.py``); an IO manager's
``handle_output`` runs after the whole step, too late for that. What the IO manager
does is hand a downstream asset its upstream weeks as a ``WeekFiles`` mapping
(week → local file), fetched when a week is read and dropped when the next one is, so a
range of any length keeps at most one upstream object per reader on local disk. Weeks
with no object (the week before the first one, say) are simply absent.

Each asset declares where its weeks live in its definition metadata
(``lake/dataset``, ``lake/extension``); nothing is pickled.
"""


import shutil
import tempfile
import threading
from collections import OrderedDict
from collections.abc import Iterator, Mapping
from pathlib import Path

import dagster as dg

from mta_assets.storage.lake import Lake

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

    def __init__(self, lake: Lake, dataset: str, extension: str, weeks: list[str]):
        self._lake = lake
        self._dataset = dataset
        self._extension = extension
        self._keys = {week: key for week in weeks if (key := self._find(week)) is not None}
        self._lock = threading.Lock()
        self._fetched: OrderedDict[str, tuple[Path, Path | None]] = OrderedDict()  # week -> (file, its folder)

    def _find(self, week: str) -> str | None:
        from mta_assets.mta.calendar import candidate_file_names

        for name in candidate_file_names(week):
            key = self._lake.key_for(self._dataset, week, self._extension, file_name=name)
            if self._lake.stat(key) is not None:
                return key
        return None

    def __getitem__(self, week: str) -> Path:
        key = self._keys[week]
        with self._lock:
            if week in self._fetched:
                self._fetched.move_to_end(week)
                return self._fetched[week][0]
            folder = Path(tempfile.mkdtemp(prefix="mta-load-"))
            path = self._lake.fetch(key, folder)
            if path.parent != folder:  # a local lake hands out the object itself, no copy
                shutil.rmtree(folder, ignore_errors=True)
                self._fetched[week] = (path, None)
            else:
                self._fetched[week] = (path, folder)
            while len(self._fetched) > _KEEP_FETCHED:
                _, (_, old) = self._fetched.popitem(last=False)
                if old is not None:
                    shutil.rmtree(old, ignore_errors=True)
            return path

    def in_lake(self, week: str) -> bool:
        """Whether the week's file is the lake's own object (a local lake), not a fetched copy."""
        self[week]
        with self._lock:
            return self._fetched[week][1] is None

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


class LakeIOManager(dg.ConfigurableIOManager):
    """Loads weekly lake objects (GCS or a local folder) for downstream assets; stores nothing itself."""

    lake: dg.ResourceDependency[Lake]

    def handle_output(self, context: dg.OutputContext, obj: object) -> None:
        if obj is not None:
            raise dg.Failure(
                f"{context.asset_key.to_user_string()}: weekly assets commit their own objects to the lake after "
                "validation and return MaterializeResult; the lake IO manager does not store returned values"
            )

    def load_input(self, context: dg.InputContext) -> WeekFiles:
        upstream = context.upstream_output
        metadata = upstream.definition_metadata if upstream else None
        try:
            dataset, extension = metadata[DATASET_KEY], metadata[EXTENSION_KEY]
        except (KeyError, TypeError):
            raise dg.Failure(
                f"asset {context.asset_key.to_user_string()} has no {DATASET_KEY}/{EXTENSION_KEY} definition "
                "metadata; the lake IO manager cannot tell where its objects live"
            ) from None
        weeks = list(context.asset_partition_keys) if context.has_asset_partitions else []
        return WeekFiles(self.lake, dataset, extension, weeks)
