"""Storage URIs (``s3://bucket/prefix``, ``az://container/prefix``, ``file:///path`` or a plain path)
and ``open_store``, which picks the backend from the scheme through a small registry."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

from musicgen_ops.storage.base import ArtifactStore, InvalidURIError, normalize_key

#: scheme -> "module:ClassName" of the backend (imported lazily so a local-only user needs no SDK).
_BACKENDS: dict[str, str] = {
    "file": "musicgen_ops.storage.local:LocalStore",
    "s3": "musicgen_ops.storage.s3:S3Store",
    "az": "musicgen_ops.storage.azure:AzureBlobStore",
}
_FACTORIES: dict[str, Callable[..., ArtifactStore]] = {}


@dataclass(frozen=True)
class StorageURI:
    """A parsed storage URI: ``scheme://bucket/key`` (for ``file`` the bucket is empty, key the path)."""

    scheme: str
    bucket: str
    key: str

    def __str__(self) -> str:
        if self.scheme == "file":
            return f"file://{self.key}"
        return f"{self.scheme}://{self.bucket}/{self.key}" if self.key else f"{self.scheme}://{self.bucket}"

    def parent(self) -> StorageURI:
        """The URI one level up (the bucket root stays the bucket root)."""
        if self.scheme == "file":
            return StorageURI("file", "", str(Path(self.key).parent))
        return StorageURI(self.scheme, self.bucket, self.key.rsplit("/", 1)[0] if "/" in self.key else "")

    @property
    def name(self) -> str:
        """The last path component."""
        return self.key.rstrip("/").rsplit("/", 1)[-1]


def supported_schemes() -> list[str]:
    """The URI schemes open_store understands."""
    return sorted(set(_BACKENDS) | set(_FACTORIES))


def is_remote(uri: str) -> bool:
    """Whether ``uri`` names a remote store (anything but a local path/file://)."""
    return parse_uri(uri).scheme != "file"


def parse_uri(uri: str | Path) -> StorageURI:
    """Parse a storage URI; plain paths are ``file`` URIs (made absolute)."""
    if isinstance(uri, Path):
        return StorageURI("file", "", str(uri.expanduser().resolve()))
    text = str(uri).strip()
    if not text:
        raise InvalidURIError("empty storage URI")
    if "://" not in text:
        return StorageURI("file", "", str(Path(text).expanduser().resolve()))
    parts = urlsplit(text)
    scheme = parts.scheme.lower()
    if scheme not in supported_schemes():
        raise InvalidURIError(
            f"unsupported storage URI scheme {scheme!r} in {text!r}; supported: "
            + ", ".join(f"{s}://" for s in supported_schemes())
        )
    if scheme == "file":
        if parts.netloc not in ("", "localhost"):
            raise InvalidURIError(
                f"file URI {text!r} must be file:///absolute/path (got host {parts.netloc!r})"
            )
        return StorageURI("file", "", str(Path(unquote(parts.path) or "/").resolve()))
    if not parts.netloc:
        raise InvalidURIError(
            f"storage URI {text!r} names no bucket/container ({scheme}://<bucket>/<prefix>)"
        )
    if parts.query or parts.fragment:
        raise InvalidURIError(f"storage URI {text!r} must not carry a query or fragment")
    return StorageURI(scheme, parts.netloc, normalize_key(unquote(parts.path), allow_empty=True))


def register_backend(scheme: str, factory: Callable[..., ArtifactStore]) -> None:
    """Add (or replace) the backend for ``scheme``; ``factory(parsed_uri, create_bucket=...)``."""
    _FACTORIES[scheme.lower()] = factory


def _factory(scheme: str) -> Callable[..., ArtifactStore]:
    if scheme in _FACTORIES:
        return _FACTORIES[scheme]
    module_name, class_name = _BACKENDS[scheme].split(":")
    cls = getattr(importlib.import_module(module_name), class_name)
    return cls.from_uri  # type: ignore[no-any-return]


def open_store(uri: str | Path | ArtifactStore, *, create_bucket: bool | None = None) -> ArtifactStore:
    """Open the store rooted at ``uri``; the backend is chosen by the scheme.

    Args:
        uri: ``s3://bucket/prefix``, ``az://container/prefix``, ``file:///path`` or a plain path.
            An ArtifactStore is returned unchanged.
        create_bucket: create a missing bucket/container on first write; None reads
            ``MUSICGEN_STORAGE_CREATE_BUCKET`` (default off).
    """
    if isinstance(uri, ArtifactStore):
        return uri
    parsed = parse_uri(uri)
    return _factory(parsed.scheme)(parsed, create_bucket=create_bucket)


def open_object(uri: str | Path, *, create_bucket: bool | None = None) -> tuple[ArtifactStore, str]:
    """Split an object/folder URI into (store at its bucket root or filesystem root, key)."""
    parsed = parse_uri(uri)
    if parsed.scheme == "file":
        path = Path(parsed.key)
        return open_store(StorageURI("file", "", str(path.parent)).__str__()), path.name
    root = StorageURI(parsed.scheme, parsed.bucket, "")
    return _factory(parsed.scheme)(root, create_bucket=create_bucket), parsed.key
