"""Datasets: folders ``datasets/<name>/`` in the artifact store, a prompt sidecar per track."""

from __future__ import annotations

import re
from pathlib import Path

from musicgen_ops.pipeline.audio import SUPPORTED_EXTENSIONS
from musicgen_ops.storage import ArtifactStore, open_store
from musicgen_ops.studio.backend import ConflictError, InvalidInputError
from musicgen_ops.studio.backend import NotFoundError as StudioNotFound
from musicgen_ops.studio.schemas import NAME_PATTERN, DatasetPublic, TrackPublic

#: A track's file name: a plain name (no folders, no leading dot) with an audio extension.
TRACK_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._ ()-]{0,126}$")
PROMPT_SUFFIX = ".txt"
#: Decoded details of each track, in a hidden folder the preprocessor skips.
INFO_PREFIX = ".info/"
DATASETS_PREFIX = "datasets"


def check_dataset_name(name: str) -> str:
    """``name`` if it is a valid dataset name, else an InvalidInputError naming the rule."""
    if not re.match(NAME_PATTERN, name):
        raise InvalidInputError(
            f"error: dataset name {name!r} is invalid: use 1-63 lowercase letters, digits and '-' "
            "(starting and ending with a letter or digit)"
        )
    return name


def check_track_name(filename: str) -> str:
    """``filename`` if it is a plain audio file name, else an InvalidInputError (no path traversal)."""
    if "/" in filename or "\\" in filename or ".." in filename or not TRACK_NAME.match(filename):
        raise InvalidInputError(
            f"error: file name {filename!r} is not allowed: a plain name without folders, '..' or a leading "
            "dot, at most 127 characters"
        )
    suffix = Path(filename).suffix.lower()
    if suffix not in SUPPORTED_EXTENSIONS:
        raise InvalidInputError(
            f"error: file {filename!r} has an unsupported type {suffix or '(none)'!r}: use "
            f"{', '.join(SUPPORTED_EXTENSIONS)}"
        )
    return filename


class StoreDatasets:
    """Dataset folders under ``<artifacts>/datasets/`` in any artifact store (file://, s3://, az://)."""

    def __init__(self, artifacts_uri: str, max_tracks: int) -> None:
        self.root = open_store(artifacts_uri).child(DATASETS_PREFIX)
        self.max_tracks = max_tracks

    def uri(self, name: str) -> str:
        """Folder URI of dataset ``name`` (what train-job downloads)."""
        return self.root.uri(check_dataset_name(name))

    def _store(self, name: str) -> ArtifactStore:
        return self.root.child(check_dataset_name(name))

    def exists(self, name: str) -> bool:
        """Whether the dataset folder exists (a marker file is written at creation)."""
        return self._store(name).exists(".dataset")

    def names(self) -> list[str]:
        """Every dataset name, sorted."""
        return sorted(
            {info.key.split("/", 1)[0] for info in self.root.list("") if info.key.endswith("/.dataset")}
        )

    def create(self, name: str) -> DatasetPublic:
        """A new empty dataset."""
        if self.exists(name):
            raise ConflictError(f"error: dataset {name!r} exists already")
        self._store(name).put_bytes(".dataset", b"")
        return self.get(name)

    def get(self, name: str) -> DatasetPublic:
        """One dataset with its tracks."""
        if not self.exists(name):
            raise StudioNotFound(f"error: no dataset {name!r}")
        store = self._store(name)
        objects = {info.key: info for info in store.list("")}
        tracks = []
        for key, info in sorted(objects.items()):
            if Path(key).suffix.lower() not in SUPPORTED_EXTENSIONS or "/" in key:
                continue
            stem = Path(key).stem
            prompt = (
                store.get_bytes(stem + PROMPT_SUFFIX).decode() if stem + PROMPT_SUFFIX in objects else stem
            )
            info_key = f"{INFO_PREFIX}{key}.json"
            details = store.get_json(info_key) if info_key in objects else {}
            tracks.append(TrackPublic(file=key, prompt=prompt, size=info.size, **details))
        return DatasetPublic(
            name=name, uri=store.uri(""), tracks=tracks, total_bytes=sum(t.size for t in tracks)
        )

    def delete(self, name: str) -> None:
        """Remove the dataset folder and everything in it."""
        if not self.exists(name):
            raise StudioNotFound(f"error: no dataset {name!r}")
        self._store(name).delete_prefix("")

    def add_track(self, name: str, filename: str, staged: Path, prompt: str, details: dict) -> TrackPublic:
        """Store a validated audio file, its prompt sidecar and its decoded details."""
        check_track_name(filename)
        if not self.exists(name):
            raise StudioNotFound(f"error: no dataset {name!r}")
        store = self._store(name)
        stem = Path(filename).stem
        existing = [
            k for k in (i.key for i in store.list("")) if Path(k).suffix.lower() in SUPPORTED_EXTENSIONS
        ]
        if any(Path(k).stem == stem and k != filename for k in existing):
            raise ConflictError(f"error: dataset {name!r} already has a track named {stem!r} (another type)")
        if filename not in existing and len(existing) >= self.max_tracks:
            raise ConflictError(f"error: dataset {name!r} holds {self.max_tracks} tracks, the limit")
        store.put_file(staged, filename)
        store.put_bytes(stem + PROMPT_SUFFIX, prompt.encode(), content_type="text/plain")
        store.put_json(f"{INFO_PREFIX}{filename}.json", details)
        return TrackPublic(file=filename, prompt=prompt, size=staged.stat().st_size, **details)
