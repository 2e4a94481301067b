"""Base models fetched once: mirror a hub model (or a local ``save_pretrained`` folder) into the artifact
store, and resolve a ``baseModel`` reference to a local folder through a per-node cache.

A mirror is an artifact root like any other: ``<mirror>/models/<name>/`` holds the model's files and a
``manifest.json`` (sha256 per file) written last, exactly as :mod:`musicgen_ops.storage.artifacts`
lays out trained models. ``<name>`` is the hub id with ``/`` replaced by ``--``
(``facebook/musicgen-small`` -> ``facebook--musicgen-small``).

A ``baseModel`` reference resolves, in order:

1. a preset (``tiny-random``) or an existing local folder: unchanged;
2. a storage URI of a mirrored model (``s3://bucket/base-models/models/facebook--musicgen-small``,
   ``az://...``, ``file:///...``): downloaded into the cache (an error when it is not there);
3. a hub id while a mirror root is configured (``MUSICGEN_BASE_MODEL_MIRROR``): downloaded from the
   mirror when it holds that model, else the hub id is returned (Hugging Face downloads it, ``HF_TOKEN``);
4. anything else: unchanged.

The cache (``MUSICGEN_BASE_MODEL_CACHE``) keeps ``<name>/<manifest-digest[:16]>/``: a second resolve of
the same model version reads only the manifest and transfers no files.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from musicgen_ops.contracts.environment import BaseModelEnvironment
from musicgen_ops.storage.artifacts import (
    MODELS_PREFIX,
    ModelManifest,
    download_model,
    publish_model,
    validate_model_id,
)
from musicgen_ops.storage.base import InvalidURIError, NotFoundError, StorageError
from musicgen_ops.storage.uri import parse_uri

logger = logging.getLogger(__name__)

#: Root URI of the mirrored base models (empty: no mirror; hub ids go to the hub).
MIRROR_ENV = BaseModelEnvironment.variable_names()["mirror"]
#: Local folder of the per-node cache of mirrored base models.
CACHE_ENV = BaseModelEnvironment.variable_names()["cache"]
DEFAULT_CACHE_DIR = Path("~/.cache/musicgen-ops/base-models")
#: Formats entry of a mirrored base model's manifest.
BASE_FORMAT = "base"
#: Names that build a model in code; never mirrored or resolved (pipeline.models.RANDOM_PRESETS).
_PRESETS = ("tiny-random", "small-random", "tiny-random-melody", "tiny-stereo-random")
_HUB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*(/[A-Za-z0-9][A-Za-z0-9._-]*)?$")
# Hub files a PyTorch load never reads (other frameworks' weights).
_HUB_IGNORE = ["*.h5", "*.msgpack", "*.ot", "flax_model*", "tf_model*", "rust_model*", "*.onnx"]


@dataclass(frozen=True)
class MirroredModel:
    """Where :func:`mirror_base_model` put a model, and its manifest."""

    uri: str
    manifest: ModelManifest


def mirror_name(reference: str) -> str:
    """The mirror folder name of a hub id: ``facebook/musicgen-small`` -> ``facebook--musicgen-small``."""
    name = reference.strip().rstrip("/").replace("/", "--")
    return validate_model_id(name)


def is_hub_id(reference: str) -> bool:
    """Whether ``reference`` looks like a hub id (``org/name`` or ``name``), not a path or URI."""
    return bool(_HUB_ID.match(reference)) and not Path(reference).expanduser().exists()


def _local_model_folder(source: Path) -> Path:
    """A ``save_pretrained`` folder (with ``config.json``), or a clear error."""
    if not source.is_dir():
        raise NotFoundError(f"base model folder {source} does not exist")
    if not (source / "config.json").is_file():
        raise StorageError(
            f"{source} holds no config.json: not a save_pretrained MusicGen folder "
            "(save one with model.save_pretrained(dir) and processor.save_pretrained(dir))"
        )
    return source


def _download_from_hub(hub_id: str, target: Path, revision: str | None, token: str | None) -> Path:
    """Snapshot a hub repository into ``target`` (``HF_TOKEN`` for gated/private models)."""
    from huggingface_hub import HfApi, snapshot_download

    token = token or os.environ.get("HF_TOKEN") or None
    try:
        ignore = list(_HUB_IGNORE)
        if any(
            f.endswith(".safetensors")
            for f in HfApi().list_repo_files(hub_id, revision=revision, token=token)
        ):
            ignore.append("pytorch_model*.bin")  # the same weights again, in the older format
        snapshot_download(hub_id, revision=revision, local_dir=target, token=token, ignore_patterns=ignore)
    except Exception as err:  # any hub, HTTP or file error: one message that says what to do instead
        raise StorageError(
            f"cannot download {hub_id!r} from the Hugging Face hub ({type(err).__name__}: "
            f"{str(err).splitlines()[0] if str(err) else ''}); on an air-gapped machine mirror a local "
            "save_pretrained folder instead, and set HF_TOKEN for gated or private models"
        ) from err
    # huggingface_hub's own bookkeeping in local_dir, not part of the model.
    shutil.rmtree(target / ".cache", ignore_errors=True)
    return _local_model_folder(target)


def mirror_base_model(
    source: str,
    mirror_uri: str | Path,
    *,
    name: str | None = None,
    revision: str | None = None,
    token: str | None = None,
    overwrite: bool = False,
) -> MirroredModel:
    """Copy a base model into ``<mirror_uri>/models/<name>/`` with a sha256 manifest written last.

    Args:
        source: a local ``save_pretrained`` folder, or a hub id (downloaded first; needs the internet).
        mirror_uri: root URI of the mirror (``s3://bucket/base-models``, ``az://...``, a path).
        name: the mirrored model's name; default: the hub id with ``/`` -> ``--``, or the folder name.
        revision: hub revision (branch, tag or commit) to download.
        token: Hugging Face token (default: ``HF_TOKEN``).
        overwrite: replace a model already mirrored under that name.

    Returns:
        The model's URI (what a TrainingJob's ``baseModel`` may name) and its manifest.
    """
    local = Path(source).expanduser()
    if local.exists():
        folder = _local_model_folder(local)
        origin = str(folder.resolve())
        name = mirror_name(name or folder.resolve().name)
        return _publish(folder, mirror_uri, name, origin, overwrite)
    if not is_hub_id(source):
        raise InvalidURIError(
            f"base model source {source!r} is neither an existing folder nor a hub id (org/name)"
        )
    name = mirror_name(name or source)
    with tempfile.TemporaryDirectory(prefix="mirror-") as scratch:
        folder = _download_from_hub(source, Path(scratch) / "model", revision, token)
        return _publish(folder, mirror_uri, name, source, overwrite, revision=revision)


def _publish(
    folder: Path,
    mirror_uri: str | Path,
    name: str,
    origin: str,
    overwrite: bool,
    revision: str | None = None,
) -> MirroredModel:
    metadata = {"source": origin, **({"revision": revision} if revision else {})}
    manifest = publish_model(
        folder,
        str(mirror_uri),
        name,
        base_model=origin,
        formats=[BASE_FORMAT],
        metadata=metadata,
        overwrite=overwrite,
    )
    uri = f"{str(parse_uri(mirror_uri)).rstrip('/')}/{MODELS_PREFIX}/{name}"
    size = manifest.total_size
    logger.info("mirrored %s to %s (%d files, %d bytes)", origin, uri, len(manifest.files), size)
    return MirroredModel(uri=uri, manifest=manifest)


def split_model_uri(uri: str) -> tuple[str, str]:
    """``<root>/models/<name>`` -> (root URI, name); anything else is an InvalidURIError."""
    parsed = parse_uri(uri)
    head, _, name = str(parsed).rstrip("/").rpartition("/")
    root, _, models = head.rpartition("/")
    if models != MODELS_PREFIX or not name:
        raise InvalidURIError(
            f"base model URI {uri!r} is not a mirrored model: expected <mirror>/{MODELS_PREFIX}/<name> "
            "(what `musicgen-ops models mirror` prints)"
        )
    return root, name


def resolve_base_model(
    reference: str, *, mirror_uri: str | None = None, cache_dir: Path | str | None = None
) -> str:
    """A ``baseModel`` reference -> what ``load_base_model`` should load (see the module docstring).

    Args:
        reference: a preset, local folder, mirrored model URI or hub id.
        mirror_uri: root URI of the mirror (None: ``MUSICGEN_BASE_MODEL_MIRROR``).
        cache_dir: local cache folder (None: ``MUSICGEN_BASE_MODEL_CACHE`` or ``~/.cache/musicgen-ops``).

    Raises:
        NotFoundError: a URI names a model that is not (completely) mirrored there.
        IntegrityError: a downloaded file does not match its manifest's sha256.
    """
    if reference in _PRESETS or Path(reference).expanduser().is_dir():
        return reference
    environment = BaseModelEnvironment.from_environ()
    mirror = (environment.mirror or "") if mirror_uri is None else mirror_uri
    cache = Path(cache_dir or environment.cache or DEFAULT_CACHE_DIR).expanduser()
    if "://" in reference:
        root, name = split_model_uri(reference)
        return str(download_model(root, name, cache))
    if mirror and is_hub_id(reference):
        try:
            return str(download_model(mirror, mirror_name(reference), cache))
        except NotFoundError:
            logger.warning("base model %s is not mirrored in %s; loading it from the hub", reference, mirror)
    return reference
