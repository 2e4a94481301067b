"""Azure Blob backend (``az://container/prefix``) through ``azure-storage-blob``; Azurite for development.

Credentials come only from the environment (see ``AzureSettings.from_env``); uploads are staged in
blocks by the SDK; its own retry policy retries connection errors, 5xx and throttling with backoff.
"""

from __future__ import annotations

import contextlib
import logging
import os
import random
import re
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from musicgen_ops.storage.base import (
    CREATE_BUCKET_ENV,
    AccessDeniedError,
    ArtifactStore,
    InvalidURIError,
    NotFoundError,
    ObjectInfo,
    PresignedUpload,
    PresignedUploadsUnsupportedError,
    ProgressCallback,
    StorageError,
    StorageUnavailableError,
    backoff_seconds,
    env_flag,
    join_key,
    make_public,
    max_attempts,
    normalize_key,
    relative_key,
)
from musicgen_ops.storage.deadlines import Timeouts
from musicgen_ops.storage.uri import StorageURI

logger = logging.getLogger(__name__)

CREDENTIALS_HINT = (
    "Set AZURE_STORAGE_CONNECTION_STRING, or AZURE_STORAGE_ACCOUNT_NAME with AZURE_STORAGE_ACCOUNT_KEY "
    "or AZURE_STORAGE_SAS_TOKEN (plus AZURE_STORAGE_BLOB_ENDPOINT for Azurite or a private endpoint)"
)
_CONTAINER_RE = re.compile(r"^(?=.{3,63}$)[a-z0-9]+(-[a-z0-9]+)*$")
_DENIED_CODES = {"AuthorizationFailure", "AuthenticationFailed", "AuthorizationPermissionMismatch"}


@dataclass(frozen=True)
class AzureSettings:
    """How to reach the storage account, read from the conventional environment variables."""

    connection_string: str | None = field(default=None, repr=False)
    account_name: str | None = None
    account_key: str | None = field(default=None, repr=False)
    sas_token: str | None = field(default=None, repr=False)
    blob_endpoint: str | None = None

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> AzureSettings:
        """Read AZURE_STORAGE_CONNECTION_STRING, or account name + key / SAS token (+ blob endpoint)."""
        env = dict(os.environ) if env is None else env

        def get(*names: str) -> str | None:
            return next((env[n] for n in names if env.get(n)), None)

        settings = cls(
            connection_string=get("AZURE_STORAGE_CONNECTION_STRING"),
            account_name=get("AZURE_STORAGE_ACCOUNT_NAME", "AZURE_STORAGE_ACCOUNT"),
            account_key=get("AZURE_STORAGE_ACCOUNT_KEY", "AZURE_STORAGE_KEY", "AZURE_STORAGE_ACCESS_KEY"),
            sas_token=(get("AZURE_STORAGE_SAS_TOKEN") or "").lstrip("?") or None,
            blob_endpoint=get("AZURE_STORAGE_BLOB_ENDPOINT"),
        )
        if (
            not settings.connection_string
            and not (settings.account_name and (settings.account_key or settings.sas_token))
            and not (settings.blob_endpoint and settings.sas_token)
        ):
            raise AccessDeniedError("no Azure Blob credentials in the environment", hint=CREDENTIALS_HINT)
        return settings

    @property
    def account_url(self) -> str:
        """The blob service URL (without any SAS token)."""
        if self.blob_endpoint:
            return self.blob_endpoint.rstrip("/")
        return f"https://{self.account_name}.blob.core.windows.net"


def make_service_client(settings: AzureSettings) -> Any:
    """A ``BlobServiceClient`` whose retry policy backs off exponentially (MUSICGEN_STORAGE_* tunables)."""
    from azure.storage.blob import BlobServiceClient, ExponentialRetry

    timeouts = Timeouts.from_env()

    class _DoublingRetry(ExponentialRetry):
        """The SDK's storage retry (connection errors, 5xx, 408, throttling) sleeping base * 2**(n-1),
        giving up when the next attempt would start past the request's deadline."""

        def configure_retries(self, request: Any) -> dict[str, Any]:
            settings = super().configure_retries(request)
            settings["deadline_at"] = time.monotonic() + timeouts.deadline
            return settings

        def get_backoff_time(self, settings: dict[str, Any]) -> float:
            delay = self.initial_backoff * 2 ** max(0, settings["count"] - 1)
            return float(random.uniform(delay * 0.8, delay * 1.2))

        def increment(
            self, settings: dict[str, Any], request: Any, response: Any = None, error: Any = None
        ) -> bool:
            retry = super().increment(settings, request, response=response, error=error)
            if retry and time.monotonic() + self.get_backoff_time(settings) >= settings["deadline_at"]:
                settings["deadline_exceeded"] = True
                return False
            return retry

    retries = max_attempts() - 1
    options: dict[str, Any] = {
        "retry_policy": _DoublingRetry(
            initial_backoff=backoff_seconds(),
            retry_total=retries,
            retry_connect=retries,
            retry_read=retries,
            retry_status=retries,
        ),
        "max_single_put_size": 8 * 1024 * 1024,
        "max_block_size": 4 * 1024 * 1024,
        "connection_timeout": timeouts.connect,
        "read_timeout": min(timeouts.read, timeouts.deadline),
    }
    if settings.connection_string:
        try:
            return BlobServiceClient.from_connection_string(settings.connection_string, **options)
        except ValueError as err:
            # The SDK's message does not echo the string; ours must not either.
            raise InvalidURIError(
                f"AZURE_STORAGE_CONNECTION_STRING is malformed: {err}", hint=CREDENTIALS_HINT
            ) from None
    credential: Any
    if settings.account_key:
        credential = {"account_name": settings.account_name, "account_key": settings.account_key}
    else:
        from azure.core.credentials import AzureSasCredential

        credential = AzureSasCredential(settings.sas_token or "")
    return BlobServiceClient(settings.account_url, credential=credential, **options)


def _delta_hook(progress: ProgressCallback | None) -> Callable[[int, int | None], None] | None:
    """Turn the SDK's (current, total) hook into byte deltas."""
    if progress is None:
        return None
    seen = [0]

    def hook(current: int, total: int | None) -> None:
        if current > seen[0]:
            progress(current - seen[0])
            seen[0] = current

    return hook


class AzureBlobStore(ArtifactStore):
    """Blobs under ``az://container/prefix``."""

    scheme = "az"

    def __init__(
        self,
        container: str,
        prefix: str = "",
        *,
        settings: AzureSettings | None = None,
        service: Any = None,
        create_bucket: bool | None = None,
    ) -> None:
        if not _CONTAINER_RE.match(container):
            raise InvalidURIError(
                f"invalid Azure container name {container!r}: "
                "3-63 lowercase letters, digits and single hyphens"
            )
        self.container = container
        self.prefix = normalize_key(prefix, allow_empty=True)
        self.settings = settings or AzureSettings.from_env()
        self.service = service or make_service_client(self.settings)
        self.container_client = self.service.get_container_client(container)
        self.create_bucket = env_flag(CREATE_BUCKET_ENV) if create_bucket is None else create_bucket
        self._container_ready = False
        super().__init__(f"az://{container}/{self.prefix}" if self.prefix else f"az://{container}")

    @classmethod
    def from_uri(cls, uri: StorageURI, *, create_bucket: bool | None = None) -> AzureBlobStore:
        """Open the store for a parsed ``az`` URI with settings from the environment."""
        return cls(uri.bucket, uri.key, create_bucket=create_bucket)

    def child(self, prefix: str) -> AzureBlobStore:
        return AzureBlobStore(
            self.container,
            join_key(self.prefix, normalize_key(prefix, allow_empty=True)),
            settings=self.settings,
            service=self.service,
            create_bucket=self.create_bucket,
        )

    def _key(self, key: str) -> str:
        return join_key(self.prefix, normalize_key(key))

    @contextlib.contextmanager
    def _errors(self, uri: str) -> Iterator[None]:
        """Translate SDK exceptions into storage errors (never echoing keys or SAS tokens)."""
        from azure.core.exceptions import (
            ClientAuthenticationError,
            HttpResponseError,
            ResourceNotFoundError,
            ServiceRequestError,
            ServiceResponseError,
        )

        try:
            yield
        except ResourceNotFoundError as err:
            if str(err.error_code or "") == "ContainerNotFound" or "ContainerNotFound" in str(err.error_code):
                raise NotFoundError(
                    f"Azure container {self.container!r} does not exist at {self.settings_url}",
                    uri=uri,
                    hint=f"Create it, or pass create_bucket=True / set {CREATE_BUCKET_ENV}=1",
                ) from err
            raise NotFoundError("object not found", uri=uri) from err
        except ClientAuthenticationError as err:
            raise AccessDeniedError("Azure refused the credentials", uri=uri, hint=CREDENTIALS_HINT) from err
        except (ServiceRequestError, ServiceResponseError) as err:
            raise StorageUnavailableError(
                f"cannot reach Azure Blob endpoint {self.settings_url} (at most {max_attempts()} attempts "
                f"within {Timeouts.from_env().deadline:g} s): {type(err).__name__}",
                uri=uri,
                hint=f"{CREDENTIALS_HINT}; limits: {Timeouts.from_env().describe()}",
            ) from err
        except HttpResponseError as err:
            status = err.status_code or 0
            code = str(getattr(err.error_code, "value", err.error_code) or "")
            if status == 403 or code in _DENIED_CODES:
                raise AccessDeniedError(
                    f"Azure refused the credentials ({code or status})", uri=uri, hint=CREDENTIALS_HINT
                ) from err
            if status == 429 or status >= 500:
                raise StorageUnavailableError(
                    f"Azure Blob kept failing (HTTP {status} {code})", uri=uri
                ) from err
            first_line = str(err.message or "").splitlines()[0] if err.message else ""
            raise StorageError(f"Azure Blob error {code or status}: {first_line}", uri=uri) from err

    @property
    def settings_url(self) -> str:
        """The blob service URL, for messages."""
        return str(self.service.url).split("?", 1)[0].rstrip("/")

    def _prepare_write(self, uri: str) -> None:
        """Create the container once when allowed (create_bucket / MUSICGEN_STORAGE_CREATE_BUCKET)."""
        if self._container_ready or not self.create_bucket:
            return
        from azure.core.exceptions import ResourceExistsError

        with self._errors(uri):
            try:
                self.container_client.create_container()
                logger.info("created Azure container %s", self.container)
            except ResourceExistsError:
                pass
        self._container_ready = True

    def put_file(self, local_path: Path | str, key: str, *, progress: ProgressCallback | None = None) -> int:
        source = Path(local_path)
        uri = self.uri(key)
        if not source.is_file():
            raise NotFoundError(f"local file {source} does not exist")
        size = source.stat().st_size
        self._prepare_write(uri)
        blob = self.container_client.get_blob_client(self._key(key))
        with open(source, "rb") as handle, self._errors(uri):
            blob.upload_blob(
                handle, length=size, overwrite=True, max_concurrency=2, progress_hook=_delta_hook(progress)
            )
        return size

    def get_file(self, key: str, local_path: Path | str, *, progress: ProgressCallback | None = None) -> Path:
        target = Path(local_path)
        uri = self.uri(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".musicgen-tmp-", dir=target.parent)
        blob = self.container_client.get_blob_client(self._key(key))
        try:
            with os.fdopen(fd, "wb") as handle, self._errors(uri):
                blob.download_blob(max_concurrency=2, progress_hook=_delta_hook(progress)).readinto(handle)
            make_public(Path(tmp))
            os.replace(tmp, target)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
        return target

    def put_bytes(self, key: str, data: bytes, *, content_type: str = "application/octet-stream") -> None:
        from azure.storage.blob import ContentSettings

        uri = self.uri(key)
        self._prepare_write(uri)
        with self._errors(uri):
            self.container_client.upload_blob(
                self._key(key),
                data,
                overwrite=True,
                content_settings=ContentSettings(content_type=content_type),
            )

    def get_bytes(self, key: str) -> bytes:
        with self._errors(self.uri(key)):
            return bytes(self.container_client.download_blob(self._key(key)).readall())

    def list(self, prefix: str = "", *, recursive: bool = True) -> Iterator[ObjectInfo]:
        trailing = "/" if prefix.endswith("/") and prefix.strip("/") else ""
        rel = normalize_key(prefix, allow_empty=True) + trailing
        full = f"{self.prefix}/{rel}" if self.prefix else rel
        with self._errors(self.uri(rel.rstrip("/"))):
            if recursive:
                items = self.container_client.list_blobs(name_starts_with=full or None)
            else:  # one level; sorted, as Azurite lists the prefixes first
                walk = self.container_client.walk_blobs(name_starts_with=full or None, delimiter="/")
                items = sorted(walk, key=lambda item: item.name)
            for item in items:
                key = relative_key(self.prefix, item.name)
                if hasattr(item, "size"):
                    yield ObjectInfo(key=key, size=item.size or 0, last_modified=item.last_modified)
                else:
                    yield ObjectInfo(key=key, is_dir=True)

    def exists(self, key: str) -> bool:
        with self._errors(self.uri(key)):
            return bool(self.container_client.get_blob_client(self._key(key)).exists())

    def delete(self, key: str) -> None:
        try:
            with self._errors(self.uri(key)):
                self.container_client.delete_blob(self._key(key))
        except NotFoundError:
            return

    def url(self, key: str, *, expires: timedelta = timedelta(hours=1)) -> str:
        from azure.storage.blob import BlobSasPermissions

        if not self.exists(key):
            raise NotFoundError("object not found", uri=self.uri(key))
        blob_url = str(self.container_client.get_blob_client(self._key(key)).url)
        signed = self._signed(key, BlobSasPermissions(read=True), expires)
        if signed:
            return signed
        if self.settings.sas_token:
            return f"{blob_url.split('?', 1)[0]}?{self.settings.sas_token}"
        if "?" in blob_url:  # a connection string carrying a SAS token
            return blob_url
        raise AccessDeniedError(
            "cannot sign a shareable URL without an account key or SAS token",
            uri=self.uri(key),
            hint=CREDENTIALS_HINT,
        )

    def upload_url(self, key: str, *, expires: timedelta = timedelta(minutes=15)) -> PresignedUpload:
        """A blob SAS URL with create/write permission on ``key`` only (signed with the account key)."""
        from azure.storage.blob import BlobSasPermissions

        uri = self.uri(key)
        self._prepare_write(uri)
        signed = self._signed(key, BlobSasPermissions(create=True, write=True), expires)
        if signed is None:
            raise PresignedUploadsUnsupportedError(
                "cannot sign an upload URL without the storage account key", uri=uri, hint=CREDENTIALS_HINT
            )
        return PresignedUpload(
            url=signed, expires=datetime.now(timezone.utc) + expires, headers={"x-ms-blob-type": "BlockBlob"}
        )

    def _signed(self, key: str, permission: Any, expires: timedelta) -> str | None:
        """``key``'s URL with a blob SAS of ``permission`` signed by the account key (None: no key)."""
        from azure.storage.blob import generate_blob_sas

        credential = self.service.credential
        account_key = getattr(credential, "account_key", None)
        if not account_key:
            return None
        sas = generate_blob_sas(
            account_name=credential.account_name,
            container_name=self.container,
            blob_name=self._key(key),
            account_key=account_key,
            permission=permission,
            expiry=datetime.now(timezone.utc) + expires,
        )
        base = str(self.container_client.get_blob_client(self._key(key)).url).split("?", 1)[0]
        return f"{base}?{sas}"
