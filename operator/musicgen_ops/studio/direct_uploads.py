"""Presigned uploads: the browser PUTs a large file straight to S3/MinIO/Azure, then the studio checks it.

``create`` validates the name and declared size and hands out a presigned URL for
``<artifacts>/uploads/<upload-id>/<file>`` (outside every dataset folder, so nothing unchecked is ever
trained on), with a ticket beside it naming the dataset, file and deadline. ``fetch`` (on ``complete``)
reads the ticket, refuses an unknown, foreign or expired upload and an object over the size limit, and
downloads the object for the same decoding check multipart uploads get; ``discard`` removes the folder.
The tickets live in the artifact store, so any studio replica can complete an upload another one began.
"""

from __future__ import annotations

import logging
import re
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path
from urllib.parse import urlsplit

from pydantic import BaseModel, ValidationError

from musicgen_ops.storage import NotFoundError as StorageNotFoundError
from musicgen_ops.storage import PresignedUploadsUnsupportedError, StorageError, open_store
from musicgen_ops.studio.backend import InvalidInputError, NotFoundError, NotOfferedError, TooLargeError
from musicgen_ops.studio.datasets import check_track_name
from musicgen_ops.studio.schemas import DirectUploadPublic
from musicgen_ops.studio.uploads import StagedFile

logger = logging.getLogger(__name__)

UPLOADS_PREFIX = "uploads"
TICKET_NAME = "ticket.json"
UPLOAD_ID = re.compile(r"^[0-9a-f]{32}$")


def utc_now() -> datetime:
    """The current time (a function, so tests can move the clock)."""
    return datetime.now(timezone.utc)


class UploadTicket(BaseModel):
    """What the studio promised when it handed out a URL."""

    upload_id: str
    dataset: str
    filename: str
    declared_size: int
    expires: datetime
    complete_by: datetime


class DirectUploads:
    """Presigned upload URLs and their completion, in ``<artifacts>/uploads/``."""

    def __init__(self, artifacts_uri: str, max_bytes: int, expiry_seconds: int) -> None:
        self.root = open_store(artifacts_uri).child(UPLOADS_PREFIX)
        self.max_bytes = max_bytes
        self.expiry = timedelta(seconds=expiry_seconds)

    def create(self, dataset: str, filename: str, size: int) -> DirectUploadPublic:
        """A presigned PUT URL for one audio file of ``dataset`` (a checked name, a size under the limit).

        Raises:
            InvalidInputError: a forbidden file name. TooLargeError: a declared size over the limit.
            NotOfferedError: the artifact store cannot presign (file://, Azure without an account key).
        """
        check_track_name(filename)
        if size > self.max_bytes:
            raise TooLargeError(
                f"error: file {filename!r} ({size} bytes) is larger than the limit of {self.max_bytes} bytes"
            )
        upload_id = uuid.uuid4().hex
        folder = self.root.child(upload_id)
        try:
            presigned = folder.upload_url(filename, expires=self.expiry)
        except PresignedUploadsUnsupportedError as err:
            raise NotOfferedError(
                f"error: the artifact store offers no presigned uploads ({err}): send the file to "
                "POST /api/v1/datasets/{name}/tracks instead"
            ) from err
        ticket = UploadTicket(
            upload_id=upload_id,
            dataset=dataset,
            filename=filename,
            declared_size=size,
            expires=presigned.expires,
            complete_by=presigned.expires + self.expiry,
        )
        folder.put_json(TICKET_NAME, ticket.model_dump(mode="json"))
        return DirectUploadPublic(
            upload_id=upload_id,
            filename=filename,
            url=presigned.url,
            method=presigned.method,
            headers=presigned.headers,
            expires=presigned.expires,
            max_bytes=self.max_bytes,
        )

    def _ticket(self, dataset: str, upload_id: str) -> UploadTicket:
        unknown = NotFoundError(f"error: no upload {upload_id!r}: ask for an upload URL first")
        if not UPLOAD_ID.match(upload_id):
            raise unknown
        folder = self.root.child(upload_id)
        try:
            ticket = UploadTicket.model_validate(folder.get_json(TICKET_NAME))
        except (StorageError, ValidationError) as err:
            raise unknown from err
        if ticket.dataset != dataset:
            raise InvalidInputError(
                f"error: upload {upload_id!r} was issued for dataset {ticket.dataset!r}, not {dataset!r}"
            )
        if utc_now() > ticket.complete_by:
            self.discard(upload_id)
            raise InvalidInputError(
                f"error: upload {upload_id!r} of {ticket.filename!r} expired at "
                f"{ticket.complete_by:%H:%M:%S} UTC: ask for a new upload URL"
            )
        return ticket

    def fetch(self, dataset: str, upload_id: str, staging: Path) -> StagedFile:
        """Download the uploaded object into ``staging`` (size-checked first); the ticket names the file.

        Raises:
            NotFoundError: no such upload. InvalidInputError: another dataset's upload, expired, or
            nothing PUT yet. TooLargeError: the object is over the limit (it is deleted).
        """
        ticket = self._ticket(dataset, upload_id)
        folder = self.root.child(upload_id)
        if not folder.exists(ticket.filename):
            raise InvalidInputError(
                f"error: nothing was uploaded for {ticket.filename!r} yet: PUT the file to its URL first"
            )
        size = folder.size(ticket.filename)
        if size > self.max_bytes:
            self.discard(upload_id)
            raise TooLargeError(
                f"error: file {ticket.filename!r} ({size} bytes) is larger than the limit of "
                f"{self.max_bytes} bytes: it was deleted"
            )
        target = staging / ticket.filename
        folder.get_file(ticket.filename, target)
        return StagedFile(ticket.filename, target, size)

    def sweep(self, now: datetime | None = None) -> list[str]:
        """Delete abandoned uploads: a ticket past its ``complete_by``, or no readable ticket and nothing
        newer than twice the URL lifetime (a ticket is written before its URL is handed out).

        Returns:
            The upload ids deleted.
        """
        now = now or utc_now()
        try:
            listing = list(self.root.list(""))
        except StorageNotFoundError:  # no bucket yet: nothing uploaded
            return []
        newest: dict[str, datetime] = {}
        tickets: set[str] = set()
        for info in listing:
            upload_id, _, name = info.key.partition("/")
            if not UPLOAD_ID.match(upload_id):
                continue
            stamp = info.last_modified or now
            newest[upload_id] = max(stamp, newest.get(upload_id, stamp))
            if name == TICKET_NAME:
                tickets.add(upload_id)
        abandoned = []
        for upload_id, stamp in sorted(newest.items()):
            deadline = stamp + 2 * self.expiry
            if upload_id in tickets:
                try:
                    ticket = UploadTicket.model_validate(self.root.child(upload_id).get_json(TICKET_NAME))
                    deadline = ticket.complete_by
                except (StorageError, ValidationError):
                    pass
            if now > deadline:
                self.discard(upload_id)
                abandoned.append(upload_id)
        if abandoned:
            logger.info("deleted %d abandoned presigned upload(s)", len(abandoned))
        return abandoned

    def discard(self, upload_id: str) -> None:
        """Delete the uploaded object and its ticket."""
        if UPLOAD_ID.match(upload_id):
            self.root.child(upload_id).delete_prefix("")


def upload_origin(artifacts_uri: str) -> str | None:
    """The origin (scheme://host[:port]) presigned upload URLs point at, for the page's
    Content-Security-Policy; None when the store presigns none (no URL is used, nothing is written).

    Raises:
        StorageError: the store could not be asked (unreachable, refused credentials).
    """
    try:
        probe = open_store(artifacts_uri).child(UPLOADS_PREFIX).upload_url("origin-probe")
    except PresignedUploadsUnsupportedError:
        return None
    parts = urlsplit(probe.url)
    return f"{parts.scheme}://{parts.netloc}"
