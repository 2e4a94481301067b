"""The dataset manifest (``manifest.json``) and where each track's text prompt comes from.

A manifest is a JSON list of clip entries::

    {"audio": "clips/song_000.wav", "prompt": "upbeat funk, 110 bpm", "duration": 30.0,
     "source": "album/song.flac", "sha256": "<clip sha256>", "source_sha256": "<source sha256>",
     "clip_index": 0, "settings": "sr=32000,duration=30,last=pad,min=1,norm=peak", "content_duration": 30.0}

``content_duration`` is the seconds of real audio in the clip: less than ``duration`` for the last clip of a
track padded with silence (``--last-clip pad``); training leaves the padded frames out of the loss.

``audio`` is relative to the manifest's folder. Prompts are looked up, in order: an existing manifest
entry for the same clip (so prompts a user edited survive a re-run), a sidecar ``<track>.txt``, a
``prompts.csv`` / ``prompts.json`` in the input folder, else the file name made readable.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import re
import tempfile
from pathlib import Path

from pydantic import BaseModel, ConfigDict, ValidationError

from musicgen_ops.pipeline.errors import DatasetError
from musicgen_ops.pipeline.filemodes import make_public

MANIFEST_NAME = "manifest.json"


class ManifestEntry(BaseModel):
    """One training clip."""

    model_config = ConfigDict(extra="allow")

    audio: str
    prompt: str
    duration: float
    source: str
    sha256: str
    source_sha256: str = ""
    clip_index: int = 0
    settings: str = ""
    content_duration: float | None = None


def sha256_file(path: Path, chunk_size: int = 1 << 20) -> str:
    """Hex sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file in the same folder, then rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        make_public(Path(tmp))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_manifest(path: Path) -> list[ManifestEntry]:
    """Read a manifest; a folder means ``<folder>/manifest.json``."""
    path = Path(path)
    if path.is_dir():
        path = path / MANIFEST_NAME
    if not path.is_file():
        raise DatasetError(f"no dataset manifest at {path}: run `musicgen-ops preprocess` first")
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        return [ManifestEntry.model_validate(item) for item in raw]
    except (json.JSONDecodeError, ValidationError, TypeError) as err:
        raise DatasetError(f"{path} is not a valid manifest: {err}") from err


def write_manifest(path: Path, entries: list[ManifestEntry]) -> None:
    """Write a manifest atomically, entries sorted by clip path."""
    ordered = sorted(entries, key=lambda e: e.audio)
    atomic_write_text(Path(path), json.dumps([e.model_dump() for e in ordered], indent=2) + "\n")


def readable_name(path: Path) -> str:
    """``01_My-Song_final.wav`` -> ``01 my song final``."""
    words = re.sub(r"[_\-.]+", " ", path.stem)
    words = re.sub(r"(?<=[a-z])(?=[A-Z])", " ", words)
    return re.sub(r"\s+", " ", words).strip().lower() or path.stem


def read_prompts_csv(path: Path) -> dict[str, str]:
    """``file -> prompt`` from a CSV with a ``file,prompt`` header (RFC 4180: quote fields with commas).

    Raises:
        DatasetError: naming the file and line of a row with too few or too many fields, or bad quoting.
    """
    table: dict[str, str] = {}
    try:
        with open(path, newline="", encoding="utf-8-sig") as handle:
            reader = csv.reader(handle, strict=True)
            header = [name.strip() for name in next(reader, [])]
            if "file" not in header or "prompt" not in header:
                raise DatasetError(f"{path}: needs a header line with the columns 'file' and 'prompt'")
            file_col, prompt_col = header.index("file"), header.index("prompt")
            for row in reader:
                if not any(cell.strip() for cell in row):
                    continue
                if len(row) != len(header):
                    hint = (
                        "put prompts that contain commas in double quotes"
                        if len(row) > len(header)
                        else "give a prompt for every file"
                    )
                    raise DatasetError(
                        f"{path}:{reader.line_num}: {len(row)} field(s) where the header has {len(header)} "
                        f'({hint}, e.g. song.wav,"calm, slow piano")'
                    )
                name, prompt = row[file_col].strip(), row[prompt_col].strip()
                if not name or not prompt:
                    raise DatasetError(f"{path}:{reader.line_num}: empty 'file' or 'prompt' field")
                table[name] = prompt
    except csv.Error as err:
        raise DatasetError(f"{path}:{reader.line_num}: not valid CSV ({err})") from err
    except UnicodeDecodeError as err:
        raise DatasetError(f"{path}: not UTF-8 text ({err.reason} at byte {err.start})") from err
    return table


class PromptSource:
    """Finds the prompt of a source track following the documented precedence (minus the manifest)."""

    def __init__(self, input_dir: Path) -> None:
        self.input_dir = Path(input_dir)
        self.table = self._load_table()

    def _load_table(self) -> dict[str, str]:
        table: dict[str, str] = {}
        csv_path, json_path = self.input_dir / "prompts.csv", self.input_dir / "prompts.json"
        if json_path.is_file():
            try:
                data = json.loads(json_path.read_text(encoding="utf-8"))
            except json.JSONDecodeError as err:
                raise DatasetError(f"{json_path} is not valid JSON: {err}") from err
            if isinstance(data, dict):
                table.update({str(k): str(v) for k, v in data.items()})
            elif isinstance(data, list):
                table.update(
                    {str(i["file"]): str(i["prompt"]) for i in data if "file" in i and "prompt" in i}
                )
            else:
                raise DatasetError(f"{json_path} must map file names to prompts (object or list of objects)")
        if csv_path.is_file():
            table.update(read_prompts_csv(csv_path))
        return table

    def prompt_for(self, track: Path) -> str:
        """Sidecar ``.txt``, then the prompts table (by relative path, name, or stem), then the file name."""
        sidecar = track.with_suffix(".txt")
        if sidecar.is_file() and (text := sidecar.read_text(encoding="utf-8").strip()):
            return text
        relative = track.relative_to(self.input_dir).as_posix()
        for key in (relative, track.name, track.stem):
            if key in self.table:
                return self.table[key]
        return readable_name(track)
