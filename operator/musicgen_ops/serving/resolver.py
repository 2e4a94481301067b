"""Model id -> local folder (or base model reference) for the engine loader.

Order of lookup for a ``trained_model_id``:

1. ``<models_root>/<model-id>/`` (what an init container or a volume provides);
2. ``<models_uri>/models/<model-id>/`` in the artifact store, downloaded (sha256-verified) into
   ``cache_dir`` by ``musicgen_ops.storage.download_model`` (a second lookup transfers nothing);
3. the in-code presets (``tiny-random``, ``small-random``) and the server's default model.

An absolute local path is accepted too when ``allow_local_paths`` is set (off by default: HTTP
callers should not pick files on the server).

Inside a model folder, ``model_format`` picks the artifact (adapter, merged/, torchscript/, onnx/);
see ``musicgen_ops.pipeline.inference.loader.locate_format``.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

from musicgen_ops.contracts.environment import ServeEnvironment
from musicgen_ops.pipeline.errors import ModelNotAvailableError
from musicgen_ops.pipeline.models import RANDOM_PRESETS
from musicgen_ops.serving.cache import ModelCache
from musicgen_ops.serving.errors import InvalidParametersError, ModelNotFoundError
from musicgen_ops.serving.schemas import ModelInfo, ModelList

logger = logging.getLogger(__name__)

_MODEL_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


def loadable_folder(folder: Path, settings: ServeEnvironment) -> Path | None:
    """``folder`` when it holds the model format the server loads (see ``locate_format``), else None."""
    from musicgen_ops.pipeline.inference.loader import locate_format  # torch: imported on first use

    fmt = settings.model_format
    if fmt == "auto" and settings.engine in ("onnx", "torchscript"):
        fmt = settings.engine
    try:
        locate_format(folder, fmt)
    except ModelNotAvailableError:
        return None
    return folder


def resolve_model(model_id: str | None, settings: ServeEnvironment) -> str:
    """The reference ``open_engine`` loads for ``model_id`` (None: the default model).

    See :func:`resolve_model_origin` (this is its first half).
    """
    return resolve_model_origin(model_id, settings)[0]


def resolve_model_origin(model_id: str | None, settings: ServeEnvironment) -> tuple[str, str | None]:
    """The reference ``open_engine`` loads for ``model_id`` (None: the default model), and its public
    origin: the artifact-store URI of a model downloaded from the store, else None (never a local path).

    The default model may also be a hub id or a path (passed to ``load_base_model`` unchanged when
    it is not found as a model id).

    Raises:
        InvalidParametersError: ``model_id`` is not a valid id.
        ModelNotFoundError: no such model locally, in the artifact store, or as a preset; the message
            lists where it looked.
    """
    model_id = model_id or settings.default_model
    is_default = model_id == settings.default_model
    if model_id in RANDOM_PRESETS:
        return model_id, None
    path = Path(model_id).expanduser()
    if path.is_absolute() and (settings.allow_local_paths or is_default):
        found = loadable_folder(path, settings) if path.is_dir() else None
        if found is None and not is_default:
            raise ModelNotFoundError(f"model path {model_id} holds no loadable {settings.model_format} model")
        return str(found or path), None
    if not _MODEL_ID.match(model_id):
        if is_default:
            return model_id, None  # a hub id such as facebook/musicgen-small
        raise InvalidParametersError(
            f"trained_model_id: {model_id!r} is not a model id (1-128 letters, digits, '.', '_', '-')",
            fields=[f"trained_model_id: not a model id (got {model_id!r})"],
        )
    # Callers are told where the server looked in its own terms (never a local path: the server may be
    # shared); the operator's log has the folder.
    looked = ["the server's models folder"]
    local = settings.models_root / model_id
    if local.is_dir():
        found = loadable_folder(local, settings)
        if found is not None:
            return str(found), None
        logger.warning("model %s: %s holds no loadable %s model", model_id, local, settings.model_format)
        raise ModelNotFoundError(
            f"model {model_id!r} is in the server's models folder but holds no loadable "
            f"{settings.model_format} model (expected adapter_config.json, merged/, torchscript/ or *.onnx)"
        )
    if settings.models_uri:
        uri = store_uri(model_id, settings)
        looked.append(uri)
        folder = _download(model_id, settings)
        if folder is not None:
            found = loadable_folder(folder, settings)
            if found is not None:
                return str(found), uri
    if is_default:
        return model_id, None
    logger.info("model %s not found in %s%s", model_id, local, f" or {looked[-1]}" if len(looked) > 1 else "")
    raise ModelNotFoundError(f"model {model_id!r} not found; looked in {' and '.join(looked)}")


def store_uri(model_id: str, settings: ServeEnvironment) -> str:
    """Where ``model_id`` lives in the artifact store (``<models_uri>/models/<model-id>``)."""
    return f"{(settings.models_uri or '').rstrip('/')}/models/{model_id}"


def _download(model_id: str, settings: ServeEnvironment) -> Path | None:
    """Fetch ``models/<model-id>/`` from the artifact store into the cache; None when absent there."""
    from musicgen_ops.storage import NotFoundError, download_model

    try:
        return Path(download_model(settings.models_uri, model_id, settings.cache_dir))
    except NotFoundError:
        return None


def available_models(settings: ServeEnvironment) -> dict[str, str | None]:
    """Model ids that can be loaded, with their public origin: the artifact-store URI, or None for a
    folder on the server's own models volume (local paths are never shown to callers)."""
    found: dict[str, str | None] = {}
    if settings.models_uri:
        try:
            from musicgen_ops.storage import StorageError, list_models

            for model_id in list_models(settings.models_uri):
                found[model_id] = store_uri(model_id, settings)
        except (ImportError, StorageError) as err:
            logger.warning("cannot list models in %s: %s", settings.models_uri, err)
    if settings.models_root.is_dir():
        for folder in sorted(settings.models_root.iterdir()):
            if folder.is_dir() and _MODEL_ID.match(folder.name) and loadable_folder(folder, settings):
                found[folder.name] = None  # the local folder wins over the store (resolve_model's order)
    return found


def model_list(cache: ModelCache, settings: ServeEnvironment) -> ModelList:
    """Loaded models (most recently used last) and the ones available to load (``GET /v1/models``)."""
    loaded = cache.entries()
    infos = [
        ModelInfo(
            model_id=str(e.key),
            loaded=True,
            memory_bytes=e.memory_bytes,
            source=e.source,
            decoders=sorted(str(d) for d in e.variants),
            family=getattr(e.engine, "family", None),
            melody=bool(getattr(e.engine, "supports_melody", False)),
        )
        for e in loaded
    ]
    loaded_models = {str(e.key) for e in loaded}
    for model_id, source in available_models(settings).items():
        if model_id not in loaded_models:
            infos.append(ModelInfo(model_id=model_id, loaded=False, source=source))
    return ModelList(
        default_model=settings.default_model, count=len(infos), models=infos, cache=cache.stats()
    )
