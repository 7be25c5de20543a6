"""A lake in a local folder: the same keys as files, written atomically (temporary file, fsync, rename)."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import tempfile
from collections.abc import Callable, Collection, Iterator
from pathlib import Path

from mta_assets.settings import SettingError, check_writable_folder
from mta_assets.storage.deadline import Deadline, TransferAborted
from mta_assets.storage.lake import MIB, ChunkCallback, LakeError, LakeStore, StoredObject, file_checksums


class LocalStore(LakeStore):
    """Objects are files under ``root``; names starting with a dot are temporary and never listed."""

    def __init__(self, root: Path):
        self.root = root
        self.where = f"local lake {root}"

    def _path(self, key: str) -> Path:
        return self.root / key

    def uri_for(self, key: str) -> str:
        return str(self._path(key))

    def differs_cheaply(self, key: str, size: int) -> bool:
        try:
            return self._path(key).stat().st_size != size
        except OSError:
            return True

    def put(
        self, source: Path, key: str, content_type: str, metadata: dict[str, str] | None,
        checksums: tuple[int, str, str], deadline: Deadline, on_chunk: ChunkCallback | None,
    ) -> StoredObject:
        size, crc32c, md5 = checksums
        target = self._path(key)
        temp: Path | None = None
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            fd, temp_name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".part")
            temp = Path(temp_name)
            with os.fdopen(fd, "wb") as out, open(source, "rb") as src:
                sent = chunks = 0
                while block := src.read(4 * MIB):
                    deadline.check(len(block))  # a stop request ends a copy between blocks
                    out.write(block)
                    sent += len(block)
                    chunks += 1
                    if on_chunk:
                        on_chunk(chunks, sent, size)
                out.flush()
                os.fsync(out.fileno())
            temp.chmod(0o644)  # mkstemp creates 0600; lake readers are other users and processes
            if temp.stat().st_size != size:
                raise LakeError(f"{self.where}: {key} was written short; the previous version is kept", permanent=False)
            os.replace(temp, target)
            temp = None
            _fsync_folder(target.parent)
        except TransferAborted as exc:
            raise LakeError(f"{self.where}: writing {key} {exc}; the previous version is kept", exc.permanent) from None
        except OSError as exc:
            raise LakeError(f"{self.where}: cannot write {key}: {exc.strerror or exc}", permanent=True) from None
        finally:
            if temp is not None:
                temp.unlink(missing_ok=True)
        return StoredObject(uri=str(target), key=key, size=size, crc32c=crc32c, md5=md5)

    def stat(self, key: str) -> StoredObject | None:
        path = self._path(key)
        if not path.is_file():
            return None
        try:
            crc32c, md5 = file_checksums(path)
            return StoredObject(uri=str(path), key=key, size=path.stat().st_size, crc32c=crc32c, md5=md5)
        except OSError as exc:
            raise LakeError(f"{self.where}: cannot read {key}: {exc.strerror or exc}", permanent=True) from None

    def fetch(self, key: str, dest_dir: Path, deadline_for: Callable[[int], Deadline]) -> Path:
        path = self._path(key)
        if not path.is_file():
            raise LakeError(f"{self.where}: {key} does not exist", permanent=True)
        return path

    def read_bytes(self, key: str) -> bytes | None:
        try:
            return self._path(key).read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise LakeError(f"{self.where}: cannot read {key}: {exc.strerror or exc}", permanent=True) from None

    def list(self, prefix: str) -> list[str]:
        folder = self._path(prefix) if prefix.endswith("/") or not prefix else self._path(prefix).parent
        if not folder.is_dir():
            return []
        keys = []
        for path in folder.rglob("*"):
            key = path.relative_to(self.root).as_posix()
            if path.is_file() and not path.name.startswith(".") and key.startswith(prefix):
                keys.append(key)
        return keys

    def delete(self, key: str) -> None:
        try:
            self._path(key).unlink(missing_ok=True)
        except OSError as exc:
            raise LakeError(f"{self.where}: cannot delete {key}: {exc.strerror or exc}", permanent=True) from None

    def prune(self, prefix: str, keep: Collection[str]) -> None:
        kept = {self._path(key).parent for key in keep}
        try:
            folders = [path for path in self._path(prefix).iterdir() if path.is_dir() and path not in kept]
            for folder in folders:
                for path in folder.iterdir():
                    if path.name.startswith(".") and path.name.endswith(".part"):  # put's temporary files
                        path.unlink(missing_ok=True)
                with contextlib.suppress(OSError):
                    folder.rmdir()  # only when empty: a file we did not write stays
        except FileNotFoundError:
            return
        except OSError as exc:
            raise LakeError(f"{self.where}: cannot clean up {prefix}: {exc.strerror or exc}", permanent=True) from None

    def create_if_absent(self, key: str, data: bytes) -> bool:
        path = self._path(key)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            return False
        except OSError as exc:
            raise LakeError(f"{self.where}: cannot create {key}: {exc.strerror or exc}", permanent=True) from None
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(data)
                out.flush()
                os.fsync(out.fileno())
        except OSError as exc:
            path.unlink(missing_ok=True)
            raise LakeError(f"{self.where}: cannot write {key}: {exc.strerror or exc}", permanent=True) from None
        return True

    def read_versioned(self, key: str) -> tuple[bytes, str] | None:
        data = self.read_bytes(key)  # os.replace swaps whole files: never a torn read
        return None if data is None else (data, _token(data))

    def replace_if(self, key: str, data: bytes, token: str | None) -> str | None:
        # Small versioned objects (leases, manifests) carry a unique owner or generation,
        # so their content hash is their version. The check and the rename happen under
        # an flock on a sidecar, which every writer of this key on this folder takes.
        with self._guard(key):
            current = self.read_bytes(key)
            if (None if current is None else _token(current)) != token:
                return None
            self._write_small(key, data)
        return _token(data)

    def delete_if(self, key: str, token: str) -> bool:
        with self._guard(key):
            current = self.read_bytes(key)
            if current is None or _token(current) != token:
                return False
            self.delete(key)
        return True

    @contextlib.contextmanager
    def _guard(self, key: str) -> Iterator[None]:
        path = self._path(key)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path.with_name(f".{path.name}.flock"), os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise LakeError(f"{self.where}: cannot lock {key}: {exc.strerror or exc}", permanent=True) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # closing releases the flock

    def _write_small(self, key: str, data: bytes) -> None:
        target = self._path(key)
        temp: Path | None = None
        try:
            fd, temp_name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".part")
            temp = Path(temp_name)
            with os.fdopen(fd, "wb") as out:
                out.write(data)
                out.flush()
                os.fsync(out.fileno())
            temp.chmod(0o644)
            os.replace(temp, target)
            temp = None
            _fsync_folder(target.parent)
        except OSError as exc:
            raise LakeError(f"{self.where}: cannot write {key}: {exc.strerror or exc}", permanent=True) from None
        finally:
            if temp is not None:
                temp.unlink(missing_ok=True)

    def check(self) -> None:
        try:
            check_writable_folder(self.root, "MTA_LAKE_URL")
        except SettingError as exc:
            raise LakeError(f"{self.where}: {exc}", permanent=True) from None


def _token(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _fsync_folder(folder: Path) -> None:
    """Make the rename itself durable (POSIX); not possible everywhere, so best effort."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)

