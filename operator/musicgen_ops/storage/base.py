"""The storage interface every backend implements, its errors and the shared helpers.

Keys are ``/``-separated paths relative to the store's root URI (``s3://bucket/prefix`` ->
key ``models/a/manifest.json`` is ``s3://bucket/prefix/models/a/manifest.json``). Folder
helpers, JSON helpers and sha256 live here once, on top of the few primitives a backend writes.
"""

from __future__ import annotations

import abc
import hashlib
import json
import logging
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

logger = logging.getLogger(__name__)

#: Called with the number of bytes just transferred.
ProgressCallback = Callable[[int], None]

#: Chunk size for streaming copies and hashing.
CHUNK_SIZE = 1024 * 1024

CREATE_BUCKET_ENV = "MUSICGEN_STORAGE_CREATE_BUCKET"
MAX_ATTEMPTS_ENV = "MUSICGEN_STORAGE_MAX_ATTEMPTS"
BACKOFF_ENV = "MUSICGEN_STORAGE_BACKOFF_SECONDS"

T = TypeVar("T")


class StorageError(Exception):
    """Base of every storage failure; the message names the URI and, where useful, the env vars to set."""

    def __init__(self, message: str, *, uri: str | None = None, hint: str | None = None) -> None:
        self.uri = uri
        self.hint = hint
        text = message if uri is None or uri in message else f"{message} ({uri})"
        super().__init__(f"{text}. {hint}" if hint else text)


class InvalidURIError(StorageError, ValueError):
    """A URI or key that cannot be used (unknown scheme, empty bucket, '..' in a key)."""


class NotFoundError(StorageError, FileNotFoundError):
    """The object, bucket or container does not exist."""


class AccessDeniedError(StorageError, PermissionError):
    """The credentials were refused or lack permission."""


class StorageUnavailableError(StorageError, ConnectionError):
    """The service could not be reached or kept failing (connection errors, 5xx, throttling)."""


class IntegrityError(StorageError):
    """Downloaded bytes do not match the recorded size or sha256."""


class PresignedUploadsUnsupportedError(StorageError):
    """This store cannot hand out a URL that accepts an upload without credentials (file://)."""


@dataclass(frozen=True)
class PresignedUpload:
    """A URL that takes one HTTP ``method`` of an object's bytes, with ``headers``, until ``expires``."""

    url: str
    expires: datetime
    method: str = "PUT"
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ObjectInfo:
    """One listed entry; ``is_dir`` entries are common prefixes from a non-recursive listing."""

    key: str
    size: int = 0
    last_modified: datetime | None = None
    is_dir: bool = False


def env_flag(name: str, default: bool = False) -> bool:
    """Read a boolean environment variable (1/true/yes/on)."""
    value = os.environ.get(name)
    if value is None or value.strip() == "":
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def env_number(name: str, default: float) -> float:
    """Read a numeric environment variable, with a clear error for junk."""
    value = os.environ.get(name)
    if value is None or value.strip() == "":
        return default
    try:
        return float(value)
    except ValueError as err:
        raise InvalidURIError(f"environment variable {name}={value!r} is not a number") from err


def max_attempts() -> int:
    """How many times a transient failure is tried in all (env MUSICGEN_STORAGE_MAX_ATTEMPTS, default 5)."""
    return max(1, int(env_number(MAX_ATTEMPTS_ENV, 5)))


def backoff_seconds() -> float:
    """Base delay of the exponential backoff (env MUSICGEN_STORAGE_BACKOFF_SECONDS, default 0.5)."""
    return max(0.0, env_number(BACKOFF_ENV, 0.5))


def retry(
    operation: Callable[[], T],
    *,
    what: str,
    attempts: int | None = None,
    base_delay: float | None = None,
    retry_on: tuple[type[BaseException], ...] = (StorageUnavailableError,),
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """Run ``operation``, retrying ``retry_on`` errors with exponential backoff (delay, 2x, 4x...)."""
    attempts = max_attempts() if attempts is None else attempts
    delay = backoff_seconds() if base_delay is None else base_delay
    for attempt in range(1, attempts + 1):
        try:
            return operation()
        except retry_on as err:
            if attempt >= attempts:
                raise
            logger.warning(
                "%s failed (attempt %d/%d), retrying in %.1fs: %s", what, attempt, attempts, delay, err
            )
            sleep(delay)
            delay *= 2
    raise AssertionError("unreachable")  # pragma: no cover


def make_public(path: Path) -> None:
    """Give a downloaded temporary file or folder (0600/0700) the ordinary modes under the umask
    (0644/0755 with umask 022) before it is renamed into place."""
    mask = os.umask(0o022)
    os.umask(mask)
    if path.is_dir():
        for root, _, files in os.walk(path):
            os.chmod(root, 0o777 & ~mask)
            for name in files:
                os.chmod(os.path.join(root, name), 0o666 & ~mask)
    else:
        os.chmod(path, 0o666 & ~mask)


def normalize_key(key: str, *, allow_empty: bool = False) -> str:
    """Validate a relative key: no '..', no backslashes; leading/trailing slashes and '.' parts dropped."""
    if "\\" in key:
        raise InvalidURIError(f"key {key!r} contains a backslash; use '/' as separator")
    parts = [p for p in key.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise InvalidURIError(f"key {key!r} must not contain '..'")
    if not parts and not allow_empty:
        raise InvalidURIError("an empty key names no object")
    return "/".join(parts)


def join_key(*parts: str) -> str:
    """Join key parts with '/', ignoring empty parts."""
    return "/".join(p.strip("/") for p in parts if p and p.strip("/"))


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file, read in chunks (never the whole file in memory)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(CHUNK_SIZE), b""):
            digest.update(chunk)
    return digest.hexdigest()


def iter_local_files(root: Path) -> Iterator[tuple[Path, str]]:
    """Yield (path, '/'-separated relative key) for every file below ``root``, sorted."""
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        yield path, path.relative_to(root).as_posix()


class ProgressReader:
    """A read-only file wrapper that reports bytes read (for SDKs that read a stream themselves)."""

    def __init__(self, handle: Any, progress: ProgressCallback | None) -> None:
        self._handle = handle
        self._progress = progress

    def read(self, size: int = -1) -> bytes:
        data = self._handle.read(size)
        if data and self._progress is not None:
            self._progress(len(data))
        return data

    def __getattr__(self, name: str) -> Any:
        return getattr(self._handle, name)


class ArtifactStore(abc.ABC):
    """A folder-like place for artifacts: a bucket/container prefix or a local directory.

    Backends implement the primitives (``put_file``, ``get_file``, ``put_bytes``, ``get_bytes``,
    ``list``, ``exists``, ``delete``, ``url``); folders and JSON are built on top of them here.
    Writes replace an existing object (last writer wins); a reader never sees a half-written object.
    """

    #: URI scheme this backend serves ("s3", "az", "file").
    scheme: str = ""

    def __init__(self, root_uri: str) -> None:
        self.root_uri = root_uri.rstrip("/")

    def uri(self, key: str = "") -> str:
        """The full URI of ``key`` under this store."""
        key = normalize_key(key, allow_empty=True)
        return f"{self.root_uri}/{key}" if key else self.root_uri

    @abc.abstractmethod
    def child(self, prefix: str) -> ArtifactStore:
        """A store of the same backend rooted at ``prefix`` below this one."""

    # -- primitives -------------------------------------------------------------------------
    @abc.abstractmethod
    def put_file(self, local_path: Path | str, key: str, *, progress: ProgressCallback | None = None) -> int:
        """Upload one local file (streamed; multipart when large); returns the size in bytes."""

    @abc.abstractmethod
    def get_file(self, key: str, local_path: Path | str, *, progress: ProgressCallback | None = None) -> Path:
        """Download one object to ``local_path`` (written to a temp name, then renamed)."""

    @abc.abstractmethod
    def put_bytes(self, key: str, data: bytes, *, content_type: str = "application/octet-stream") -> None:
        """Write a small object from memory."""

    @abc.abstractmethod
    def get_bytes(self, key: str) -> bytes:
        """Read a small object into memory."""

    @abc.abstractmethod
    def list(self, prefix: str = "", *, recursive: bool = True) -> Iterator[ObjectInfo]:
        """List objects whose key starts with ``prefix`` (string prefix, like S3), sorted by key."""

    @abc.abstractmethod
    def exists(self, key: str) -> bool:
        """Whether an object exists at ``key``."""

    @abc.abstractmethod
    def delete(self, key: str) -> None:
        """Delete one object; deleting a missing object is not an error."""

    @abc.abstractmethod
    def url(self, key: str, *, expires: timedelta = timedelta(hours=1)) -> str:
        """A URL that fetches ``key`` without credentials (presigned/SAS; file:// for local)."""

    def upload_url(self, key: str, *, expires: timedelta = timedelta(minutes=15)) -> PresignedUpload:
        """A presigned URL that accepts one PUT of ``key`` (S3/MinIO presigned PUT, Azure SAS).

        Raises:
            PresignedUploadsUnsupportedError: the backend has none (local folders) or lacks the key to sign.
        """
        raise PresignedUploadsUnsupportedError(
            f"{self.scheme}:// stores take no presigned uploads", uri=self.uri(key)
        )

    # -- built on the primitives ----------------------------------------------------------------
    def size(self, key: str) -> int:
        """Size of the object at ``key`` in bytes."""
        key = normalize_key(key)
        for info in self.list(key):
            if info.key == key:
                return info.size
        raise NotFoundError("object not found", uri=self.uri(key))

    def put_json(self, key: str, value: Any) -> None:
        """Write a JSON document (UTF-8, indented, sorted keys)."""
        data = json.dumps(value, indent=2, sort_keys=True, default=str).encode()
        self.put_bytes(key, data, content_type="application/json")

    def get_json(self, key: str) -> Any:
        """Read a JSON document; invalid JSON raises StorageError naming the URI."""
        raw = self.get_bytes(key)
        try:
            return json.loads(raw)
        except json.JSONDecodeError as err:
            raise StorageError(f"object is not valid JSON: {err}", uri=self.uri(key)) from err

    def delete_prefix(self, prefix: str) -> int:
        """Delete every object below the folder ``prefix``; returns how many were deleted."""
        prefix = normalize_key(prefix, allow_empty=True)
        folder = f"{prefix}/" if prefix else ""
        try:
            listing = list(self.list(folder))
        except NotFoundError:  # no bucket/container: nothing to delete
            return 0
        count = 0
        for info in listing:
            self.delete(info.key)
            count += 1
        return count

    def put_folder(
        self, local_dir: Path | str, prefix: str = "", *, progress: ProgressCallback | None = None
    ) -> list[str]:
        """Upload every file below ``local_dir`` to ``prefix/<relative path>``; returns the keys."""
        root = Path(local_dir)
        if not root.is_dir():
            raise NotFoundError(f"local folder {root} does not exist or is not a directory")
        keys = []
        for path, rel in iter_local_files(root):
            key = join_key(prefix, rel)
            self.put_file(path, key, progress=progress)
            keys.append(key)
        return keys

    def get_folder(
        self, prefix: str, local_dir: Path | str, *, progress: ProgressCallback | None = None
    ) -> list[Path]:
        """Download every object below the folder ``prefix`` into ``local_dir``; returns the paths."""
        prefix = normalize_key(prefix, allow_empty=True)
        folder = f"{prefix}/" if prefix else ""
        root = Path(local_dir)
        paths = []
        for info in self.list(folder):
            rel = info.key[len(folder) :]
            target = root.joinpath(*rel.split("/"))
            self.get_file(info.key, target, progress=progress)
            paths.append(target)
        if not paths:
            raise NotFoundError("no objects below this prefix", uri=self.uri(prefix))
        return paths

    def folder_size(self, prefix: str = "") -> tuple[int, int]:
        """(object count, total bytes) below ``prefix``."""
        count = total = 0
        for info in self.list(prefix):
            count += 1
            total += info.size
        return count, total

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.root_uri!r})"


def relative_key(root_prefix: str, full_key: str) -> str:
    """Strip the store's root prefix from a backend key."""
    if not root_prefix:
        return full_key
    head = root_prefix.rstrip("/") + "/"
    return full_key[len(head) :] if full_key.startswith(head) else full_key
