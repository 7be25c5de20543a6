"""How assets store and load weekly lake objects: the lake IO manager's logic (the resource is ``LakeIOManager`` in ``resources.py``).

Loading. A downstream asset receives its upstream weeks the way its parameter is typed:

- ``pa.Table`` or ``pd.DataFrame``: one week's table. Several weeks (a range, or a
  partition mapping that hands it the week before too) fail before the step, naming the
  annotation that takes them: ``dict[str, pd.DataFrame]`` (or ``pa.Table``);
- ``dict[str, pd.DataFrame]`` (or ``pa.Table``, or ``Mapping[...]``): a dict week -> table,
  each week read when it is read (``WeekValues``);
- ``Path``: one week's local file, the step's own until teardown;
- anything else (no annotation, ``WeekFiles``): a ``WeekFiles`` mapping week -> local file.

Files are fetched when a week is read and dropped a few weeks later, so a range of any
length keeps a bounded number of upstream objects on local disk; a file handed out alone
(a ``Path``) stays until the step's resources are torn down, also on a local lake, whose
commits collect a replaced object one commit later (a hard link, else a copy). A week
whose object other runs' commits collected meanwhile is read from the object its
manifest names now. Weeks with no object (the week before the first one, say) are simply
absent. An unpartitioned asset's one object (``<lake>/<dataset><extension>``) is loaded
the same way, as a table, a data frame or a file.

Storing. A returned ``pa.Table``, ``pd.DataFrame`` or local file ``Path`` (or a mapping
week -> one of them, for a range) becomes the week's object, written to a temporary file,
uploaded and verified, then moved into place atomically. Our own weekly steps return
nothing: the turnstile step commits each week's objects together as soon as the week has
passed every blocking check (``turnstile/week.py``), and the ridership step stores each
week as it is done, through the same ``store_week`` — an IO manager's ``handle_output``
runs once after the whole step, which would stage every week of a range on local disk and
make one bad week cost the others their objects.

Each asset declares where its weeks live in its definition metadata
(``lake/dataset``, ``lake/extension``); an asset without it (a user's own) stores its
weeks as Parquet under a dataset named after its key. Nothing is pickled.
"""


import os
import shutil
import tempfile
import threading
from collections import OrderedDict
from collections.abc import Callable, ItemsView, Iterable, Iterator, KeysView, Mapping, ValuesView
from pathlib import Path

from typing import Any, TypeVar

from mta_assets.storage.commit import week_key
from mta_assets.storage.lake import LakeError, StoredObject
from mta_assets.storage.lake_client import LakeClient

DATASET_KEY = "lake/dataset"
EXTENSION_KEY = "lake/extension"
AREA_KEY = "lake/area"  # whose week manifests name the current objects (storage/commit.py)
DEFAULT_AREA = "turnstile"
# Weeks kept on local disk at once per reader: a reader working on two weeks at a time
# reads each week and the one before it.
_KEEP_FETCHED = 4


PARQUET_TYPE = "application/vnd.apache.parquet"
CONTENT_TYPES = {".parquet": PARQUET_TYPE, ".csv.gz": "application/gzip", ".txt": "text/plain"}
T = TypeVar("T")


def lake_metadata(dataset: str, extension: str, area: str = DEFAULT_AREA) -> dict[str, str]:
    """Definition metadata telling the IO manager where an asset's weeks live (or, unpartitioned,
    its one object: ``<dataset><extension>``) and whose week manifests to follow."""
    return {DATASET_KEY: dataset, EXTENSION_KEY: extension, AREA_KEY: area}


def where(metadata: Any, asset_path: list[str]) -> tuple[str, str, str]:
    """(dataset, extension, area) of an asset's weeks: its definition metadata, else Parquet under its key."""
    if metadata and DATASET_KEY in metadata:
        return str(metadata[DATASET_KEY]), str(metadata.get(EXTENSION_KEY, ".parquet")), str(metadata.get(AREA_KEY, DEFAULT_AREA))
    return "/".join(asset_path), ".parquet", DEFAULT_AREA


def store_week(lake: LakeClient, dataset: str, week: str | None, value: Any, extension: str = ".parquet") -> StoredObject:
    """Write one week's value (a table, a data frame or a local file) as its lake object, atomically and verified."""
    if isinstance(value, Path):
        return _put(lake, dataset, week, extension, value)
    import pyarrow as pa

    from mta_assets.defs.turnstile.tables import write_parquet

    if not isinstance(value, pa.Table):
        if type(value).__module__.startswith("pandas"):
            value = pa.Table.from_pandas(value, preserve_index=False)
        else:
            raise TypeError(
                f"{dataset} week {week}: the lake stores a pyarrow Table, a pandas DataFrame or a local file Path, "
                f"not {type(value).__name__}"
            )
    folder = Path(tempfile.mkdtemp(prefix="mta-store-"))
    try:
        path = folder / f"{week or dataset.rsplit('/', 1)[-1]}.parquet"
        write_parquet(value, path)
        return _put(lake, dataset, week, ".parquet", path)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _put(lake: LakeClient, dataset: str, week: str | None, extension: str, path: Path) -> StoredObject:
    key = lake.key_for(dataset, week, extension) if week else lake.key(dataset + extension)
    return lake.put_file(path, key, CONTENT_TYPES.get(extension, "application/octet-stream"))


def as_type(path: Path, wanted: Any) -> Any:
    """A week's local file as the type a downstream parameter asks for."""
    name = getattr(wanted, "__name__", "")
    if name == "Table" and getattr(wanted, "__module__", "").startswith("pyarrow"):
        import pyarrow.parquet as pq

        return pq.read_table(path)
    if name == "DataFrame" and getattr(wanted, "__module__", "").startswith("pandas"):
        import pyarrow.parquet as pq

        return pq.read_table(path).to_pandas()
    return path


def own_file(path: Path, folder: Path) -> Path:
    """``path``'s file in ``folder``, which outlives ``path`` being deleted: a hard link, else a copy."""
    target = folder / path.name
    try:
        os.link(path, target)
    except FileNotFoundError:
        raise
    except OSError:  # another filesystem, or one without hard links
        shutil.copyfile(path, target)
    return target


class WeekValues(dict):
    """Upstream weeks as tables or data frames, each read from its file when it is read.

    A ``dict``, because Dagster type-checks a ``dict[str, ...]`` (or ``Mapping``) parameter
    as one; nothing is kept in it, so memory stays one week's whatever the range. Dagster's
    check reads every value once before the step starts, so a week is read twice.
    """

    def __init__(self, files: "WeekFiles", wanted: Any):
        super().__init__()
        self._files = files
        self._wanted = wanted

    def __getitem__(self, week: str) -> Any:
        return self._files.read(week, lambda path: as_type(path, self._wanted))

    def __iter__(self) -> Iterator[str]:
        return iter(self._files)

    def __len__(self) -> int:
        return len(self._files)

    def __contains__(self, week: object) -> bool:
        return week in self._files

    def get(self, week: str, default: Any = None) -> Any:
        return self[week] if week in self else default

    def keys(self) -> KeysView[str]:
        return KeysView(self)

    def values(self) -> ValuesView[Any]:
        return ValuesView(self)

    def items(self) -> ItemsView[str, Any]:
        return ItemsView(self)

    def __repr__(self) -> str:
        return f"WeekValues({list(self)}, {getattr(self._wanted, '__name__', self._wanted)})"


class WeekFiles(Mapping[str, Path]):
    """Upstream weeks as local files, fetched on access; only the last few weeks read stay on disk."""

    def __init__(
        self, lake: LakeClient, dataset: str, extension: str, weeks: list[str], area: str = DEFAULT_AREA,
        name: str | None = None, log: Callable[[str], None] = lambda message: None,
    ):
        self._lake = lake
        self._name = name or dataset  # the upstream asset, for messages
        self._log = log
        self._area = area
        self._dataset = dataset
        self._extension = extension
        self._weeks = list(weeks)
        self._keys = {week: key for week in self._weeks if (key := self._find(week)) is not None}
        self._lock = threading.Lock()
        self._fetched: OrderedDict[str, tuple[Path, Path | None]] = OrderedDict()  # week -> (file, its folder)

    def _find(self, week: str) -> str | None:
        # The week's manifest names its current object (storage/commit.py); a week
        # committed before manifests is found at its fixed key.
        return week_key(self._lake, self._area, self._dataset, week, self._extension)

    def __getitem__(self, week: str) -> Path:
        return self.file(week)[0]

    def key(self, week: str) -> str | None:
        """The lake key this mapping reads the week from (None: no object)."""
        return self._keys.get(week)

    def refresh(self, weeks: Iterable[str]) -> set[str]:
        """Follow the weeks' manifests again: the weeks another run committed anew since this
        mapping looked (or first committed), which are read from their new objects from now on."""
        weeks = [week for week in weeks if week in self._weeks]
        found = dict(zip(weeks, self._lake.lookups(self._find, weeks)))
        changed = set()
        for week, key in found.items():
            if key == self._keys.get(week):
                continue
            changed.add(week)
            self.release(week)
            if key is None:
                self._keys.pop(week, None)
            else:
                self._keys[week] = key
        return changed

    def file(self, week: str) -> tuple[Path, bool]:
        """(the week's local file, whether it is the lake's own object: a local lake, no copy).

        A local lake's object handed out earlier may be gone since: a commit keeps the object
        it replaces for readers in flight until the week's next commit. The week's manifest
        then names the object to read.
        """
        with self._lock:
            if week in self._fetched and not self._fetched[week][0].exists():
                _, folder = self._fetched.pop(week)
                if folder is not None:
                    shutil.rmtree(folder, ignore_errors=True)
            if week not in self._fetched:
                self._fetched[week] = self._fetch(week)
                while len(self._fetched) > _KEEP_FETCHED:
                    _, (_, old) = self._fetched.popitem(last=False)
                    if old is not None:
                        shutil.rmtree(old, ignore_errors=True)
            self._fetched.move_to_end(week)
            path, folder = self._fetched[week]
            return path, folder is None

    def read(self, week: str, reader: Callable[[Path], T]) -> T:
        """``reader`` of the week's file, once more from the week's current object when the file
        went before ``reader`` opened it (a local lake's object, collected by another run's commit)."""
        try:
            return reader(self[week])
        except FileNotFoundError:
            pass  # gone since it was found: ``self[week]`` follows the week's manifest again
        try:
            return reader(self[week])
        except FileNotFoundError as exc:
            why = "the week kept being committed anew by other runs"
            raise self._unreadable(week, self._keys[week], exc, why, permanent=False) from None

    def _fetch(self, week: str) -> tuple[Path, Path | None]:
        key = self._keys[week]
        try:
            return self._fetch_key(key)
        except LakeError as exc:
            gone = exc
        current = self._find(week)
        if current is None or current == key:
            why = "the week's manifest still names it" if current else "the week has no object any more"
            raise self._unreadable(week, key, gone, why, gone.permanent)
        self._keys[week] = current  # what ``key(week)`` reports from now on: the object read
        self._log(
            f"{self._name} week {week}: committed anew by another run while this step ran; reading "
            f"{self._lake.uri_for(current)}, as {self._lake.uri_for(key)} is gone"
        )
        try:
            return self._fetch_key(current)
        except LakeError as exc:
            why = "the week was committed anew by another run meanwhile"
            raise self._unreadable(week, current, exc, why, exc.permanent) from None

    def _fetch_key(self, key: str) -> tuple[Path, Path | None]:
        folder = Path(tempfile.mkdtemp(prefix="mta-load-"))
        try:
            path = self._lake.fetch(key, folder)
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise
        if path.parent != folder:  # a local lake hands out the object itself, no copy
            shutil.rmtree(folder, ignore_errors=True)
            return path, None
        return path, folder

    def _unreadable(self, week: str, key: str, cause: Exception, why: str, permanent: bool) -> LakeError:
        return LakeError(f"{self._name} week {week}: cannot read {self._lake.uri_for(key)}: {cause}; {why}", permanent)

    def release(self, week: str) -> None:
        """Drop the week's local copy now (it is fetched again if read again)."""
        with self._lock:
            _, folder = self._fetched.pop(week, (None, None))
        if folder is not None:
            shutil.rmtree(folder, ignore_errors=True)

    def release_all(self) -> None:
        """Drop every local copy now."""
        with self._lock:
            folders = [folder for _, folder in self._fetched.values() if folder is not None]
            self._fetched.clear()
        for folder in folders:
            shutil.rmtree(folder, ignore_errors=True)

    def __iter__(self) -> Iterator[str]:
        return iter(self._keys)

    def __len__(self) -> int:
        return len(self._keys)

    def __contains__(self, week: object) -> bool:
        return week in self._keys

    def __del__(self) -> None:
        self.release_all()
