"""Model artifacts under a root URI: ``models/<model-id>/`` with the files and a ``manifest.json``.

The manifest (files with size and sha256, formats, base model, created time, caller metadata) is
written last: a folder without it is an incomplete upload and every reader treats it as absent.
Downloads verify sizes and sha256 and land in a local cache keyed by model id + manifest hash, so
a second download of the same model transfers no files.
"""

from __future__ import annotations

import logging
import re
import shutil
import tempfile
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from musicgen_ops.contracts.manifest import MANIFEST_NAME, ManifestFile, ModelManifest
from musicgen_ops.storage.base import (
    ArtifactStore,
    IntegrityError,
    InvalidURIError,
    NotFoundError,
    ProgressCallback,
    StorageError,
    iter_local_files,
    join_key,
    make_public,
    sha256_file,
)
from musicgen_ops.storage.uri import open_store

logger = logging.getLogger(__name__)

MODELS_PREFIX = "models"
_COMPLETE_MARKER = ".complete"
_MODEL_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


def validate_model_id(model_id: str) -> str:
    """A model id is one path segment: letters, digits, '.', '_', '-' (max 128), not starting with a dot."""
    if not _MODEL_ID_RE.match(model_id or ""):
        raise InvalidURIError(
            f"invalid model id {model_id!r}: use 1-128 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    return model_id


def model_prefix(model_id: str) -> str:
    """The key prefix of a model under a root: ``models/<model-id>``."""
    return join_key(MODELS_PREFIX, validate_model_id(model_id))


def model_uri(root_uri: str | ArtifactStore, model_id: str) -> str:
    """The URI of a model's folder: ``<root>/models/<model-id>``."""
    root = root_uri.root_uri if isinstance(root_uri, ArtifactStore) else str(root_uri).rstrip("/")
    return f"{root}/{model_prefix(model_id)}"


def build_manifest(
    local_dir: Path,
    model_id: str,
    *,
    base_model: str,
    formats: list[str],
    metadata: dict[str, Any] | None = None,
) -> ModelManifest:
    """Hash every file below ``local_dir`` (streamed) into a manifest."""
    files = [
        ManifestFile(path=rel, size=path.stat().st_size, sha256=sha256_file(path))
        for path, rel in iter_local_files(local_dir)
        if rel != MANIFEST_NAME
    ]
    return ModelManifest(
        model_id=model_id,
        base_model=base_model,
        formats=list(formats),
        files=files,
        created=datetime.now(timezone.utc),
        metadata=dict(metadata or {}),
    )


def publish_model(
    local_dir: Path | str,
    root_uri: str | ArtifactStore,
    model_id: str,
    *,
    base_model: str,
    formats: list[str],
    metadata: dict[str, Any] | None = None,
    overwrite: bool = False,
    progress: ProgressCallback | None = None,
    create_bucket: bool | None = None,
) -> ModelManifest:
    """Upload ``local_dir`` to ``<root>/models/<model-id>/`` and write its manifest last.

    Args:
        local_dir: folder with the adapter and exported formats (any layout; kept as is).
        root_uri: storage root (``s3://bucket/prefix``, ``az://...``, a path) or an open store.
        model_id: one path segment naming the model.
        base_model: base checkpoint the adapter belongs to (e.g. ``facebook/musicgen-small``).
        formats: formats present (e.g. ``["adapter", "onnx"]``).
        metadata: extra JSON-serialisable fields stored in the manifest.
        overwrite: replace an existing complete model; otherwise publishing over one is an error.
        progress: called with uploaded byte counts.
        create_bucket: create a missing bucket/container (None: env MUSICGEN_STORAGE_CREATE_BUCKET).
    """
    source = Path(local_dir)
    if not source.is_dir():
        raise NotFoundError(f"model folder {source} does not exist or is not a directory")
    store = open_store(root_uri, create_bucket=create_bucket)
    prefix = model_prefix(model_id)
    manifest = build_manifest(source, model_id, base_model=base_model, formats=formats, metadata=metadata)
    if not manifest.files:
        raise StorageError(f"model folder {source} holds no files to publish")
    manifest_key = join_key(prefix, MANIFEST_NAME)
    if store.exists(manifest_key):
        if not overwrite:
            raise StorageError(
                f"model {model_id!r} already exists; pass overwrite=True to replace it",
                uri=model_uri(store, model_id),
            )
        # Remove the manifest first so readers see "absent" rather than a half-replaced model.
        store.delete(manifest_key)
    store.delete_prefix(prefix)
    for entry in manifest.files:
        store.put_file(source / entry.path, join_key(prefix, entry.path), progress=progress)
    store.put_bytes(manifest_key, manifest.to_json(), content_type="application/json")
    logger.info(
        "published model %s (%d files, %d bytes) to %s",
        model_id,
        len(manifest.files),
        manifest.total_size,
        model_uri(store, model_id),
    )
    return manifest


def read_manifest(root_uri: str | ArtifactStore, model_id: str) -> ModelManifest | None:
    """The model's manifest, or None when the model is absent or its upload is incomplete."""
    store = open_store(root_uri)
    key = join_key(model_prefix(model_id), MANIFEST_NAME)
    try:
        raw = store.get_bytes(key)
    except NotFoundError:
        return None
    try:
        manifest = ModelManifest.model_validate_json(raw)
    except ValidationError as err:
        raise IntegrityError(f"manifest is invalid: {err.errors()[0]['msg']}", uri=store.uri(key)) from err
    if manifest.model_id != model_id:
        raise IntegrityError(
            f"manifest names model {manifest.model_id!r}, expected {model_id!r}", uri=store.uri(key)
        )
    return manifest


def list_models(root_uri: str | ArtifactStore) -> list[str]:
    """Ids of the complete models (those with a manifest) under a root."""
    store = open_store(root_uri)
    suffix = f"/{MANIFEST_NAME}"
    ids = []
    for info in store.list(f"{MODELS_PREFIX}/"):
        rest = info.key[len(MODELS_PREFIX) + 1 :]
        if rest.endswith(suffix) and rest.count("/") == 1:
            ids.append(rest[: -len(suffix)])
    return sorted(ids)


def delete_model(root_uri: str | ArtifactStore, model_id: str) -> int:
    """Delete a model: the manifest first (it disappears for readers at once), then its files."""
    store = open_store(root_uri)
    prefix = model_prefix(model_id)
    store.delete(join_key(prefix, MANIFEST_NAME))
    return store.delete_prefix(prefix)


def _verify(path: Path, entry: ManifestFile, uri: str) -> None:
    size = path.stat().st_size
    if size != entry.size:
        raise IntegrityError(
            f"size mismatch for {entry.path}: expected {entry.size} bytes, got {size}", uri=uri
        )
    digest = sha256_file(path)
    if digest != entry.sha256:
        raise IntegrityError(
            f"sha256 mismatch for {entry.path}: expected {entry.sha256}, got {digest} "
            "(tampered or corrupted)",
            uri=uri,
        )


def cached_model_path(cache_dir: Path | str, manifest: ModelManifest) -> Path:
    """Where ``download_model`` keeps this exact model version: ``<cache>/<model-id>/<digest[:16]>``."""
    return Path(cache_dir) / manifest.model_id / manifest.digest[:16]


def download_model(
    root_uri: str | ArtifactStore,
    model_id: str,
    cache_dir: Path | str,
    *,
    progress: ProgressCallback | None = None,
) -> Path:
    """Download a complete model into the local cache, verifying sha256; returns its folder.

    Only the small manifest is read when this version is already cached (a cache hit transfers
    no files). Files are verified in a temporary folder that is renamed into place, so a failed
    or tampered download never leaves a usable cache entry.
    """
    store = open_store(root_uri)
    manifest = read_manifest(store, model_id)
    if manifest is None:
        raise NotFoundError(
            f"model {model_id!r} not found: no {MANIFEST_NAME} (missing, or its upload did not finish)",
            uri=model_uri(store, model_id),
        )
    target = cached_model_path(cache_dir, manifest)
    marker = target / _COMPLETE_MARKER
    if marker.is_file() and marker.read_text().strip() == manifest.digest:
        logger.info("model %s: cache hit at %s", model_id, target)
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".download-", dir=target.parent))
    prefix = model_prefix(model_id)
    try:
        for entry in manifest.files:
            local = staging.joinpath(*entry.path.split("/"))
            key = join_key(prefix, entry.path)
            store.get_file(key, local, progress=progress)
            _verify(local, entry, store.uri(key))
        (staging / MANIFEST_NAME).write_bytes(manifest.to_json())
        (staging / _COMPLETE_MARKER).write_text(manifest.digest)
        make_public(staging)
        if target.exists():  # a stale or partial entry from an earlier crash
            shutil.rmtree(target, ignore_errors=True)
        try:
            staging.rename(target)
        except OSError:
            # Another process finished the same version first: use its verified copy.
            if not (marker.is_file() and marker.read_text().strip() == manifest.digest):
                raise
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    logger.info("model %s: downloaded %d files to %s", model_id, len(manifest.files), target)
    return target
