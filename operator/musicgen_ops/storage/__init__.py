"""Artifact storage: one small interface over S3/MinIO, Azure Blob and local folders.

``open_store(uri)`` picks the backend from the URI scheme (``s3://``, ``az://``, ``file://`` or a
plain path). SDKs are imported inside the backends, so a local-only user needs neither.
"""

from musicgen_ops.storage.artifacts import (
    MANIFEST_NAME,
    ManifestFile,
    ModelManifest,
    cached_model_path,
    delete_model,
    download_model,
    list_models,
    model_uri,
    publish_model,
    read_manifest,
)
from musicgen_ops.storage.base import (
    AccessDeniedError,
    ArtifactStore,
    IntegrityError,
    InvalidURIError,
    NotFoundError,
    ObjectInfo,
    PresignedUpload,
    PresignedUploadsUnsupportedError,
    ProgressCallback,
    StorageError,
    StorageUnavailableError,
    retry,
)
from musicgen_ops.storage.local import LocalStore
from musicgen_ops.storage.uri import StorageURI, open_object, open_store, parse_uri, register_backend

__all__ = [
    "MANIFEST_NAME",
    "AccessDeniedError",
    "ArtifactStore",
    "IntegrityError",
    "InvalidURIError",
    "LocalStore",
    "ManifestFile",
    "ModelManifest",
    "NotFoundError",
    "ObjectInfo",
    "PresignedUpload",
    "PresignedUploadsUnsupportedError",
    "ProgressCallback",
    "StorageError",
    "StorageURI",
    "StorageUnavailableError",
    "cached_model_path",
    "delete_model",
    "download_model",
    "list_models",
    "model_uri",
    "open_object",
    "open_store",
    "parse_uri",
    "publish_model",
    "read_manifest",
    "register_backend",
    "retry",
]
