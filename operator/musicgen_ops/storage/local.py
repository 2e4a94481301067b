"""Local-folder backend (``file:///path`` or a plain path): the same contract on a filesystem.

Writes go to a temporary file in the target folder and are renamed into place, so a reader
never sees a half-written object.
"""

from __future__ import annotations

import errno
import os
import shutil
import tempfile
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

from musicgen_ops.storage.base import (
    CHUNK_SIZE,
    AccessDeniedError,
    ArtifactStore,
    NotFoundError,
    ObjectInfo,
    ProgressCallback,
    StorageError,
    StorageUnavailableError,
    make_public,
    normalize_key,
)
from musicgen_ops.storage.uri import StorageURI

_TMP_PREFIX = ".musicgen-tmp-"


def _translate(err: OSError, uri: str) -> StorageError:
    """Turn an OSError into the storage error of the same meaning."""
    if isinstance(err, FileNotFoundError):
        return NotFoundError("no such file", uri=uri)
    if isinstance(err, PermissionError):
        return AccessDeniedError(f"permission denied: {err.strerror}", uri=uri)
    if err.errno in (errno.ENOSPC, errno.EIO, errno.EROFS):
        return StorageUnavailableError(f"local storage failed: {err.strerror}", uri=uri)
    return StorageError(f"local storage failed: {err}", uri=uri)


def _copy_stream(src, dst, progress: ProgressCallback | None) -> int:  # type: ignore[no-untyped-def]
    total = 0
    for chunk in iter(lambda: src.read(CHUNK_SIZE), b""):
        dst.write(chunk)
        total += len(chunk)
        if progress is not None:
            progress(len(chunk))
    return total


class LocalStore(ArtifactStore):
    """Artifacts in a local directory (created on first write)."""

    scheme = "file"

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root).expanduser().resolve()
        super().__init__(f"file://{self.root.as_posix()}")

    @classmethod
    def from_uri(cls, uri: StorageURI, *, create_bucket: bool | None = None) -> LocalStore:
        """Open the store for a parsed ``file`` URI (``create_bucket`` has no meaning locally)."""
        return cls(uri.key)

    def child(self, prefix: str) -> LocalStore:
        return LocalStore(self._path(prefix, allow_empty=True))

    def _path(self, key: str, *, allow_empty: bool = False) -> Path:
        key = normalize_key(key, allow_empty=allow_empty)
        return self.root.joinpath(*key.split("/")) if key else self.root

    def _write_atomic(self, target: Path, writer, uri: str) -> int:  # type: ignore[no-untyped-def]
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=_TMP_PREFIX, dir=target.parent)
        except OSError as err:
            raise _translate(err, uri) from err
        try:
            with os.fdopen(fd, "wb") as handle:
                size = writer(handle)
            make_public(Path(tmp))
            os.replace(tmp, target)
            return size
        except OSError as err:
            raise _translate(err, uri) from err
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)

    def put_file(self, local_path: Path | str, key: str, *, progress: ProgressCallback | None = None) -> int:
        source = Path(local_path)
        uri = self.uri(key)
        try:
            src = open(source, "rb")  # noqa: SIM115 - closed below
        except OSError as err:
            raise _translate(err, str(source)) from err
        with src:
            return self._write_atomic(self._path(key), lambda dst: _copy_stream(src, dst, progress), uri)

    def get_file(self, key: str, local_path: Path | str, *, progress: ProgressCallback | None = None) -> Path:
        source = self._path(key)
        target = Path(local_path)
        try:
            src = open(source, "rb")  # noqa: SIM115 - closed below
        except (IsADirectoryError, FileNotFoundError) as err:
            raise NotFoundError("object not found", uri=self.uri(key)) from err
        except OSError as err:
            raise _translate(err, self.uri(key)) from err
        with src:
            self._write_atomic(target, lambda dst: _copy_stream(src, dst, progress), str(target))
        return target

    def put_bytes(self, key: str, data: bytes, *, content_type: str = "application/octet-stream") -> None:
        def write(handle) -> int:  # type: ignore[no-untyped-def]
            handle.write(data)
            return len(data)

        self._write_atomic(self._path(key), write, self.uri(key))

    def get_bytes(self, key: str) -> bytes:
        path = self._path(key)
        try:
            return path.read_bytes()
        except (IsADirectoryError, FileNotFoundError) as err:
            raise NotFoundError("object not found", uri=self.uri(key)) from err
        except OSError as err:
            raise _translate(err, self.uri(key)) from err

    def _info(self, path: Path) -> ObjectInfo:
        stat = path.stat()
        return ObjectInfo(
            key=path.relative_to(self.root).as_posix(),
            size=stat.st_size,
            last_modified=datetime.fromtimestamp(stat.st_mtime, tz=timezone.utc),
        )

    def list(self, prefix: str = "", *, recursive: bool = True) -> Iterator[ObjectInfo]:
        trailing = "/" if prefix.endswith("/") and prefix.strip("/") else ""
        prefix = normalize_key(prefix, allow_empty=True) + trailing
        base_key = prefix.rsplit("/", 1)[0] if "/" in prefix else ""
        base = self._path(base_key, allow_empty=True)
        if not base.is_dir():
            return
        if recursive:
            entries = sorted(
                (p for p in base.rglob("*") if p.is_file() and not p.name.startswith(_TMP_PREFIX)),
                key=lambda p: p.relative_to(self.root).as_posix(),
            )
            for path in entries:
                info = self._info(path)
                if info.key.startswith(prefix):
                    yield info
            return
        for path in sorted(base.iterdir()):
            key = path.relative_to(self.root).as_posix()
            if path.name.startswith(_TMP_PREFIX):
                continue
            if path.is_dir() and f"{key}/".startswith(prefix):
                yield ObjectInfo(key=f"{key}/", is_dir=True)
            elif path.is_file() and key.startswith(prefix):
                yield self._info(path)

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def delete(self, key: str) -> None:
        path = self._path(key)
        try:
            path.unlink()
        except FileNotFoundError:
            return
        except OSError as err:
            raise _translate(err, self.uri(key)) from err
        # Drop folders left empty, up to the root.
        parent = path.parent
        while parent != self.root and self.root in parent.parents:
            try:
                parent.rmdir()
            except OSError:
                break
            parent = parent.parent

    def delete_prefix(self, prefix: str) -> int:
        count = super().delete_prefix(prefix)
        folder = self._path(prefix, allow_empty=True)
        if folder != self.root and folder.is_dir():
            shutil.rmtree(folder, ignore_errors=True)
        return count

    def url(self, key: str, *, expires: timedelta = timedelta(hours=1)) -> str:
        path = self._path(key)
        if not path.is_file():
            raise NotFoundError("object not found", uri=self.uri(key))
        return path.as_uri()
