"""S3 backend (``s3://bucket/prefix``) through the ``minio`` SDK: MinIO, AWS S3 and any S3-compatible store.

Credentials and endpoint come only from the environment (see ``S3Settings.from_env``); uploads
stream through the SDK's multipart upload; connection errors, 5xx and throttling are retried by
urllib3 with exponential backoff.
"""

from __future__ import annotations

import contextlib
import logging
import mimetypes
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from musicgen_ops.storage.base import (
    CHUNK_SIZE,
    CREATE_BUCKET_ENV,
    AccessDeniedError,
    ArtifactStore,
    InvalidURIError,
    NotFoundError,
    ObjectInfo,
    PresignedUpload,
    ProgressCallback,
    ProgressReader,
    StorageError,
    StorageUnavailableError,
    backoff_seconds,
    env_flag,
    env_number,
    join_key,
    make_public,
    max_attempts,
    normalize_key,
    relative_key,
)
from musicgen_ops.storage.deadlines import DeadlineExceededError, Timeouts, deadline_pool_manager
from musicgen_ops.storage.uri import StorageURI

logger = logging.getLogger(__name__)

CREDENTIALS_HINT = (
    "Set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (and AWS_SESSION_TOKEN for temporary credentials), "
    "or MINIO_ACCESS_KEY and MINIO_SECRET_KEY"
)
ENDPOINT_HINT = (
    "Set S3_ENDPOINT_URL (or AWS_ENDPOINT_URL / MINIO_ENDPOINT); use http:// for an insecure endpoint"
)
PART_SIZE_ENV = "MUSICGEN_STORAGE_PART_SIZE_MB"
_MIN_PART = 5 * 1024 * 1024
_NOT_FOUND = {"NoSuchKey", "NoSuchObject", "ResourceNotFound"}
_DENIED = {
    "AccessDenied",
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
    "ExpiredToken",
    "InvalidToken",
    "AllAccessDisabled",
    "AuthorizationHeaderMalformed",
}
_TRANSIENT = {"SlowDown", "InternalError", "ServiceUnavailable", "RequestTimeout", "Throttling"}


@dataclass(frozen=True)
class S3Settings:
    """Endpoint and credentials, read from the conventional environment variables."""

    endpoint: str = "s3.amazonaws.com"
    secure: bool = True
    access_key: str | None = None
    secret_key: str | None = field(default=None, repr=False)
    session_token: str | None = field(default=None, repr=False)
    region: str | None = None

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> S3Settings:
        """S3_ENDPOINT_URL > AWS_ENDPOINT_URL > MINIO_ENDPOINT; AWS_* keys, MINIO_* as fallbacks."""
        env = dict(os.environ) if env is None else env

        def get(*names: str) -> str | None:
            return next((env[n] for n in names if env.get(n)), None)

        raw = get("S3_ENDPOINT_URL", "AWS_ENDPOINT_URL", "MINIO_ENDPOINT") or "https://s3.amazonaws.com"
        if "://" not in raw:
            insecure = env.get("MINIO_SECURE", "").lower() in {"0", "false", "no", "off"}
            raw = f"{'http' if insecure else 'https'}://{raw}"
        parts = urlsplit(raw)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise InvalidURIError(f"S3 endpoint {raw!r} is not an http(s) URL", hint=ENDPOINT_HINT)
        if parts.path not in ("", "/"):
            raise InvalidURIError(f"S3 endpoint {raw!r} must not have a path", hint=ENDPOINT_HINT)
        return cls(
            endpoint=parts.netloc,
            secure=parts.scheme == "https",
            access_key=get("AWS_ACCESS_KEY_ID", "MINIO_ACCESS_KEY"),
            secret_key=get("AWS_SECRET_ACCESS_KEY", "MINIO_SECRET_KEY"),
            session_token=get("AWS_SESSION_TOKEN"),
            region=get("AWS_REGION", "AWS_DEFAULT_REGION"),
        )

    @property
    def endpoint_url(self) -> str:
        """The endpoint as a URL (no credentials)."""
        return f"{'https' if self.secure else 'http'}://{self.endpoint}"


def make_client(settings: S3Settings) -> Any:
    """A ``minio.Minio`` client whose urllib3 pool retries connection errors, 5xx and 429 with backoff."""
    import certifi
    from minio import Minio

    http_client = deadline_pool_manager(
        Timeouts.from_env(),
        {
            "total": max_attempts() - 1,
            "backoff_factor": backoff_seconds(),
            "status_forcelist": (429, 500, 502, 503, 504),
            "allowed_methods": None,
            "raise_on_status": False,
        },
        maxsize=10,
        cert_reqs="CERT_REQUIRED",
        ca_certs=os.environ.get("SSL_CERT_FILE") or certifi.where(),
    )
    return Minio(
        settings.endpoint,
        access_key=settings.access_key,
        secret_key=settings.secret_key,
        session_token=settings.session_token,
        secure=settings.secure,
        region=settings.region,
        http_client=http_client,
    )


class S3Store(ArtifactStore):
    """Objects under ``s3://bucket/prefix``."""

    scheme = "s3"

    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        *,
        settings: S3Settings | None = None,
        client: Any = None,
        create_bucket: bool | None = None,
    ) -> None:
        from minio.helpers import check_bucket_name

        try:
            check_bucket_name(bucket)
        except ValueError as err:
            raise InvalidURIError(f"invalid S3 bucket name {bucket!r}: {err}") from err
        self.bucket = bucket
        self.prefix = normalize_key(prefix, allow_empty=True)
        self.settings = settings or S3Settings.from_env()
        self.client = client or make_client(self.settings)
        self.create_bucket = env_flag(CREATE_BUCKET_ENV) if create_bucket is None else create_bucket
        self._bucket_ready = False
        super().__init__(f"s3://{bucket}/{self.prefix}" if self.prefix else f"s3://{bucket}")

    @classmethod
    def from_uri(cls, uri: StorageURI, *, create_bucket: bool | None = None) -> S3Store:
        """Open the store for a parsed ``s3`` URI with settings from the environment."""
        return cls(uri.bucket, uri.key, create_bucket=create_bucket)

    def child(self, prefix: str) -> S3Store:
        return S3Store(
            self.bucket,
            join_key(self.prefix, normalize_key(prefix, allow_empty=True)),
            settings=self.settings,
            client=self.client,
            create_bucket=self.create_bucket,
        )

    def _key(self, key: str) -> str:
        return join_key(self.prefix, normalize_key(key))

    @contextlib.contextmanager
    def _errors(self, uri: str) -> Iterator[None]:
        """Translate SDK/transport exceptions into storage errors (never echoing credentials)."""
        import urllib3
        from minio.error import InvalidResponseError, S3Error, ServerError

        try:
            yield
        except S3Error as err:
            code = err.code or ""
            if code == "NoSuchBucket":
                raise NotFoundError(
                    f"S3 bucket {self.bucket!r} does not exist at {self.settings.endpoint_url}",
                    uri=uri,
                    hint=f"Create it, or pass create_bucket=True / set {CREATE_BUCKET_ENV}=1",
                ) from err
            if code in _NOT_FOUND:
                raise NotFoundError("object not found", uri=uri) from err
            if code in _DENIED:
                raise AccessDeniedError(
                    f"S3 refused the credentials ({code})", uri=uri, hint=CREDENTIALS_HINT
                ) from err
            if code in _TRANSIENT:
                raise StorageUnavailableError(f"S3 kept failing ({code})", uri=uri) from err
            raise StorageError(f"S3 error {code}: {err.message}", uri=uri) from err
        except ServerError as err:
            raise StorageUnavailableError(
                f"S3 endpoint {self.settings.endpoint_url} answered HTTP {err.status_code}", uri=uri
            ) from err
        except InvalidResponseError as err:
            raise StorageUnavailableError(
                f"S3 endpoint {self.settings.endpoint_url} gave an invalid response",
                uri=uri,
                hint=ENDPOINT_HINT,
            ) from err
        except (urllib3.exceptions.HTTPError, ConnectionError, TimeoutError) as err:
            if isinstance(getattr(err, "reason", None), DeadlineExceededError):
                raise StorageUnavailableError(
                    f"S3 endpoint {self.settings.endpoint_url} did not answer within "
                    f"{Timeouts.from_env().deadline:g} s",
                    uri=uri,
                    hint=f"Check the endpoint ({ENDPOINT_HINT}); limits: {Timeouts.from_env().describe()}",
                ) from err
            raise StorageUnavailableError(
                f"cannot reach S3 endpoint {self.settings.endpoint_url} after {max_attempts()} attempts: "
                f"{type(err).__name__}",
                uri=uri,
                hint=ENDPOINT_HINT,
            ) from err

    def _prepare_write(self, uri: str) -> None:
        """Create the bucket once when allowed (create_bucket / MUSICGEN_STORAGE_CREATE_BUCKET)."""
        if self._bucket_ready or not self.create_bucket:
            return
        from minio.error import S3Error

        with self._errors(uri):
            if not self.client.bucket_exists(self.bucket):
                logger.info("creating S3 bucket %s", self.bucket)
                try:
                    self.client.make_bucket(self.bucket, location=self.settings.region)
                except S3Error as err:
                    if err.code not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                        raise
        self._bucket_ready = True

    @staticmethod
    def _part_size() -> int:
        return max(_MIN_PART, int(env_number(PART_SIZE_ENV, 16) * 1024 * 1024))

    def put_file(self, local_path: Path | str, key: str, *, progress: ProgressCallback | None = None) -> int:
        source = Path(local_path)
        uri = self.uri(key)
        if not source.is_file():
            raise NotFoundError(f"local file {source} does not exist")
        size = source.stat().st_size
        self._prepare_write(uri)
        content_type = mimetypes.guess_type(source.name)[0] or "application/octet-stream"
        with open(source, "rb") as handle, self._errors(uri):
            self.client.put_object(
                self.bucket,
                self._key(key),
                ProgressReader(handle, progress),
                length=size,
                part_size=self._part_size(),
                content_type=content_type,
            )
        return size

    def get_file(self, key: str, local_path: Path | str, *, progress: ProgressCallback | None = None) -> Path:
        target = Path(local_path)
        uri = self.uri(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".musicgen-tmp-", dir=target.parent)
        try:
            with os.fdopen(fd, "wb") as handle, self._errors(uri):
                response = self.client.get_object(self.bucket, self._key(key))
                try:
                    for chunk in response.stream(CHUNK_SIZE):
                        handle.write(chunk)
                        if progress is not None:
                            progress(len(chunk))
                finally:
                    response.close()
                    response.release_conn()
            make_public(Path(tmp))
            os.replace(tmp, target)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
        return target

    def put_bytes(self, key: str, data: bytes, *, content_type: str = "application/octet-stream") -> None:
        import io

        uri = self.uri(key)
        self._prepare_write(uri)
        with self._errors(uri):
            self.client.put_object(
                self.bucket, self._key(key), io.BytesIO(data), len(data), content_type=content_type
            )

    def get_bytes(self, key: str) -> bytes:
        with self._errors(self.uri(key)):
            response = self.client.get_object(self.bucket, self._key(key))
            try:
                return bytes(response.read())
            finally:
                response.close()
                response.release_conn()

    def list(self, prefix: str = "", *, recursive: bool = True) -> Iterator[ObjectInfo]:
        trailing = "/" if prefix.endswith("/") and prefix.strip("/") else ""
        rel = normalize_key(prefix, allow_empty=True) + trailing
        full = f"{self.prefix}/{rel}" if self.prefix else rel
        with self._errors(self.uri(rel.rstrip("/"))):
            for obj in self.client.list_objects(self.bucket, prefix=full or None, recursive=recursive):
                key = relative_key(self.prefix, obj.object_name)
                yield ObjectInfo(
                    key=key,
                    size=obj.size or 0,
                    last_modified=obj.last_modified,
                    is_dir=bool(obj.is_dir),
                )

    def exists(self, key: str) -> bool:
        from minio.error import S3Error

        try:
            with self._errors(self.uri(key)):
                try:
                    self.client.stat_object(self.bucket, self._key(key))
                except S3Error as err:
                    if err.code in _NOT_FOUND or err.code == "NoSuchBucket":
                        return False
                    raise
        except NotFoundError:
            return False
        return True

    def delete(self, key: str) -> None:
        try:
            with self._errors(self.uri(key)):
                self.client.remove_object(self.bucket, self._key(key))
        except NotFoundError:
            return

    def delete_prefix(self, prefix: str) -> int:
        from minio.deleteobjects import DeleteObject

        rel = normalize_key(prefix, allow_empty=True)
        try:
            keys = [info.key for info in self.list(f"{rel}/" if rel else "")]
        except NotFoundError:  # no bucket: nothing to delete
            return 0
        if not keys:
            return 0
        with self._errors(self.uri(rel)):
            errors = list(self.client.remove_objects(self.bucket, [DeleteObject(self._key(k)) for k in keys]))
        if errors:
            raise StorageError(f"could not delete {len(errors)} objects: {errors[0]}", uri=self.uri(rel))
        return len(keys)

    def url(self, key: str, *, expires: timedelta = timedelta(hours=1)) -> str:
        if not self.exists(key):
            raise NotFoundError("object not found", uri=self.uri(key))
        with self._errors(self.uri(key)):
            return str(self.client.presigned_get_object(self.bucket, self._key(key), expires=expires))

    def upload_url(self, key: str, *, expires: timedelta = timedelta(minutes=15)) -> PresignedUpload:
        """A presigned PUT URL (SigV4 query signature; S3 and MinIO refuse it after ``expires``)."""
        uri = self.uri(key)
        self._prepare_write(uri)
        with self._errors(uri):
            url = self.client.presigned_put_object(self.bucket, self._key(key), expires=expires)
        return PresignedUpload(url=str(url), expires=datetime.now(timezone.utc) + expires)
