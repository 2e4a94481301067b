"""Streaming multipart uploads: each file goes to a staging folder as it arrives, size-checked on the way,
then validated by really decoding it; only when every file of the request is valid is anything stored."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header

from musicgen_ops.pipeline.audio import load_audio
from musicgen_ops.pipeline.errors import AudioDecodeError
from musicgen_ops.studio.backend import InvalidInputError, TooLargeError
from musicgen_ops.studio.datasets import check_track_name

#: Largest text field (a prompt) and most text fields in one request.
MAX_FIELD_BYTES = 4096
MAX_FIELDS = 16
MAX_FILES = 50


@dataclass
class StagedFile:
    """One uploaded file in the staging folder."""

    filename: str
    path: Path
    size: int = 0


@dataclass
class ParsedUpload:
    """Text fields and staged files of one multipart request."""

    fields: dict[str, str] = field(default_factory=dict)
    files: list[StagedFile] = field(default_factory=list)


class PartCollector:
    """python-multipart callbacks: headers, then data of one part at a time."""

    max_field_bytes = MAX_FIELD_BYTES

    def __init__(self, staging: Path, max_file_bytes: int) -> None:
        self.staging = staging
        self.max_file_bytes = max_file_bytes
        self.result = ParsedUpload()
        self._headers: dict[bytes, bytes] = {}
        self._header_name = b""
        self._header_value = b""
        self._field: tuple[str, bytearray] | None = None
        self._file: tuple[StagedFile, IO[bytes]] | None = None

    def callbacks(self) -> dict[str, Any]:
        return {
            "on_part_begin": self.part_begin,
            "on_header_field": lambda data, start, end: setattr(
                self, "_header_name", self._header_name + data[start:end]
            ),
            "on_header_value": lambda data, start, end: setattr(
                self, "_header_value", self._header_value + data[start:end]
            ),
            "on_header_end": self.header_end,
            "on_headers_finished": self.headers_finished,
            "on_part_data": self.part_data,
            "on_part_end": self.part_end,
        }

    def part_begin(self) -> None:
        self._headers = {}

    def header_end(self) -> None:
        self._headers[self._header_name.lower()] = self._header_value
        self._header_name, self._header_value = b"", b""

    def headers_finished(self) -> None:
        _, options = parse_options_header(self._headers.get(b"content-disposition", b""))
        name = options.get(b"name", b"").decode("utf-8", "replace")
        if b"filename" in options:
            filename = options[b"filename"].decode("utf-8", "replace")
            check_track_name(filename)  # before a byte of it is written
            if len(self.result.files) >= MAX_FILES:
                raise InvalidInputError(f"error: at most {MAX_FILES} files per request")
            if any(f.filename == filename for f in self.result.files):
                raise InvalidInputError(f"error: file {filename!r} is sent twice")
            staged = StagedFile(filename, self.staging / filename)
            self._file = (staged, open(staged.path, "wb"))  # noqa: SIM115 - closed in part_end
            self.result.files.append(staged)
        else:
            if len(self.result.fields) >= MAX_FIELDS:
                raise InvalidInputError(f"error: at most {MAX_FIELDS} form fields per request")
            self._field = (name, bytearray())

    def part_data(self, data: bytes, start: int, end: int) -> None:
        chunk = data[start:end]
        if self._file is not None:
            staged, handle = self._file
            staged.size += len(chunk)
            if staged.size > self.max_file_bytes:
                raise TooLargeError(
                    f"error: file {staged.filename!r} is larger than the limit of {self.max_file_bytes} bytes"
                )
            handle.write(chunk)
        elif self._field is not None:
            name, value = self._field
            value.extend(chunk)
            if len(value) > self.max_field_bytes:
                raise InvalidInputError(
                    f"error: form field {name!r} is longer than {self.max_field_bytes} bytes"
                )

    def part_end(self) -> None:
        if self._file is not None:
            self._file[1].close()
            self._file = None
        elif self._field is not None:
            name, value = self._field
            self.result.fields[name] = value.decode("utf-8", "replace")
            self._field = None

    def close(self) -> None:
        if self._file is not None:
            self._file[1].close()


def boundary_of(content_type: str) -> bytes:
    """The multipart boundary of a Content-Type header, or an InvalidInputError."""
    kind, options = parse_options_header(content_type)
    if kind != b"multipart/form-data" or not options.get(b"boundary"):
        raise InvalidInputError("error: the upload must be multipart/form-data with a boundary")
    return options[b"boundary"]


async def receive_upload(
    content_type: str, chunks: AsyncIterator[bytes], staging: Path, max_file_bytes: int
) -> ParsedUpload:
    """Parse a multipart body as it streams in, writing files under ``staging``.

    Raises:
        InvalidInputError: not multipart, a forbidden file name, too many parts, no file.
        TooLargeError: a file over ``max_file_bytes`` (reading stops there).
    """
    result = await parse_multipart(content_type, chunks, PartCollector(staging, max_file_bytes))
    if not result.files:
        raise InvalidInputError("error: the upload holds no file (send the audio in a 'file' field)")
    return result


async def parse_multipart(
    content_type: str, chunks: AsyncIterator[bytes], collector: PartCollector
) -> ParsedUpload:
    """Feed a streamed multipart body to ``collector`` (which stages files and checks limits)."""
    parser = MultipartParser(boundary_of(content_type), collector.callbacks())
    try:
        async for chunk in chunks:
            parser.write(chunk)
        parser.finalize()
    except MultipartParseError as err:
        raise InvalidInputError(f"error: not a well-formed multipart body ({err})") from err
    finally:
        collector.close()
    return collector.result


def audio_details(staged: StagedFile) -> dict[str, Any]:
    """Decode the whole file; its duration, rate and channels, or an InvalidInputError naming the file."""
    if staged.size == 0:
        raise InvalidInputError(f"error: file {staged.filename!r} is empty")
    try:
        audio, sample_rate = load_audio(staged.path)
    except AudioDecodeError as err:
        reason = str(err).removeprefix(f"{staged.path}: ")
        raise InvalidInputError(f"error: file {staged.filename!r} is not usable audio: {reason}") from err
    return {
        "duration_seconds": round(audio.shape[1] / sample_rate, 3),
        "sample_rate": sample_rate,
        "channels": int(audio.shape[0]),
    }


class StagingFolder:
    """A private temporary folder under the studio root, removed on exit."""

    def __init__(self, root: Path) -> None:
        self.parent = root / ".staging"

    def __enter__(self) -> Path:
        self.parent.mkdir(parents=True, exist_ok=True)
        self.path = Path(tempfile.mkdtemp(dir=self.parent))
        return self.path

    def __exit__(self, *exc: object) -> None:
        shutil.rmtree(self.path, ignore_errors=True)
