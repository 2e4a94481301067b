"""Open a generation engine from a model reference: a base model, a trained checkpoint or an ONNX export.

A model reference is one of:

* a base model accepted by ``load_base_model`` (hub id, ``save_pretrained`` folder, ``tiny-random``);
* a trained checkpoint folder (what training writes to ``final_model/``): a PEFT adapter
  (``adapter_config.json`` + weights), the processor and ``training_metadata.json`` naming the
  ``base_model``; the adapter is merged into the base weights with ``merge_and_unload``;
* with ``engine="onnx"``, an ONNX export (file or folder) for ``ONNXInferenceEngine``.
"""

from __future__ import annotations

import importlib.util
import json
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from musicgen_ops.pipeline.errors import (
    DeviceNotAvailableError,
    ModelNotAvailableError,
    UnsupportedModelError,
)
from musicgen_ops.pipeline.inference.base import GenerationEngine
from musicgen_ops.pipeline.inference.decoders import DEFAULT_DECODER, available_decoders, build_decoder
from musicgen_ops.pipeline.models import LoadedModel, load_base_model

logger = logging.getLogger(__name__)

ENGINES = ("auto", "torch", "fast", "onnx", "torchscript")
METADATA_NAME = "training_metadata.json"
ADAPTER_CONFIG = "adapter_config.json"
ONNX_ENGINE_MODULE = "musicgen_ops.pipeline.inference.onnx_engine"


def is_checkpoint(path: Path) -> bool:
    """True when ``path`` is a folder holding a PEFT adapter (a trained checkpoint)."""
    return path.is_dir() and (path / ADAPTER_CONFIG).is_file()


def onnx_available() -> bool:
    """True when the ONNX engine module (and so onnxruntime support) is installed."""
    try:
        return importlib.util.find_spec(ONNX_ENGINE_MODULE) is not None
    except ModuleNotFoundError:
        return False


def read_training_metadata(folder: Path) -> dict[str, Any]:
    """``training_metadata.json`` of a checkpoint folder, checked to name a ``base_model``."""
    path = folder / METADATA_NAME
    if not path.is_file():
        raise ModelNotAvailableError(
            f"{folder} holds a LoRA adapter but no {METADATA_NAME}: cannot tell which base model it adapts"
        )
    try:
        metadata = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise ModelNotAvailableError(f"{path} is not valid JSON: {err}") from err
    base = metadata.get("base_model") if isinstance(metadata, dict) else None
    if not isinstance(base, str) or not base:
        raise ModelNotAvailableError(f"{path} has no 'base_model' string naming the model the adapter adapts")
    return metadata


def load_checkpoint(folder: str | Path) -> LoadedModel:
    """Load a trained checkpoint: its base model with the LoRA adapter merged in, and its processor.

    Raises:
        ModelNotAvailableError: the folder, its metadata, the base model or the adapter cannot be loaded.
    """
    from peft import PeftModel
    from safetensors import SafetensorError
    from transformers import AutoProcessor

    folder = Path(folder)
    metadata = read_training_metadata(folder)
    base = load_base_model(metadata["base_model"])
    try:
        merged = PeftModel.from_pretrained(base.model, str(folder)).merge_and_unload()
    except (OSError, ValueError, KeyError, RuntimeError, SafetensorError) as err:  # truncated weights too
        raise ModelNotAvailableError(
            f"cannot apply the LoRA adapter in {folder} to base model {metadata['base_model']!r}: "
            f"{type(err).__name__}: {err}"
        ) from err
    processor = base.processor
    if (folder / "tokenizer_config.json").is_file() or (folder / "preprocessor_config.json").is_file():
        try:
            processor = AutoProcessor.from_pretrained(str(folder))
        except (OSError, ValueError) as err:
            logger.warning("%s: processor unreadable (%s); using the base model's", folder, err)
    merged.eval()
    logger.info("loaded checkpoint %s (base %s, adapter merged)", folder, metadata["base_model"])
    return LoadedModel(model=merged, processor=processor, name=str(folder))


def load_model(model_ref: str | Path) -> LoadedModel:
    """A base model or a trained checkpoint folder, as a :class:`LoadedModel`."""
    path = Path(model_ref).expanduser()
    if is_checkpoint(path):
        return load_checkpoint(path)
    return load_base_model(str(model_ref))


#: Sub-folders of a published model or training output that hold a loadable torch model.
_TORCH_SUBFOLDERS = ("final_model", "model")


def resolve_device(device: str) -> str:
    """``auto`` -> ``cuda`` when torch sees a GPU, else ``cpu``; ``cuda[:N]`` must exist (never a silent CPU).

    Raises:
        DeviceNotAvailableError: a CUDA device was asked for and torch sees none.
    """
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if str(device).startswith("cuda") and not torch.cuda.is_available():
        raise DeviceNotAvailableError(
            f"device {device} requested but torch sees no CUDA GPU (torch {torch.__version__}, "
            f"CUDA build: {torch.version.cuda or 'no'}): run on a GPU node or ask for device cpu"
        )
    return device


def resolve_dtype(dtype: str | None, device: str) -> str | None:
    """``auto`` -> ``bfloat16`` on CUDA, ``float32`` elsewhere; None stays None (float32)."""
    if dtype != "auto":
        return dtype
    return "bfloat16" if str(device).startswith("cuda") else "float32"


def locate_format(folder: str | Path, model_format: str = "auto") -> tuple[Path, str]:
    """Where in a model folder the requested format lives, and which engine family loads it.

    A model folder is what training publishes (``models/<id>/``): the adapter at its root (or in
    ``final_model/``), exported formats in ``merged/``, ``torchscript/`` and ``onnx/``.

    Returns:
        ``(path, family)`` with family ``torch`` (torch/fast engines), ``torchscript`` or ``onnx``.

    Raises:
        ModelNotAvailableError: the folder holds no such format; the message lists what it holds.
    """
    folder = Path(folder).expanduser()

    def torch_model(names: tuple[str, ...], marker: str) -> Path | None:
        for candidate in (folder, *(folder / n for n in names)):
            if (candidate / marker).is_file():
                return candidate
        return None

    found: dict[str, Path | None] = {
        "adapter": torch_model(_TORCH_SUBFOLDERS, ADAPTER_CONFIG),
        "merged": torch_model(("merged",), "config.json"),
        "torchscript": folder / "torchscript" if (folder / "torchscript").is_dir() else None,
        "onnx": next((c for c in (folder, folder / "onnx") if c.is_dir() and any(c.glob("*.onnx"))), None),
    }
    found["onnx-int8"] = found["onnx"]
    if model_format == "auto":
        for name in ("adapter", "merged", "onnx", "torchscript"):
            if found[name] is not None:
                model_format = name
                break
        else:
            raise ModelNotAvailableError(
                f"{folder} holds no loadable model (expected {ADAPTER_CONFIG}, config.json, "
                "torchscript/ or *.onnx)"
            )
    if model_format not in found:
        raise ValueError(f"unknown model format {model_format!r}; choose one of {', '.join(found)}")
    path = found[model_format]
    if path is None:
        present = [name for name, where in found.items() if where is not None]
        raise ModelNotAvailableError(
            f"{folder} holds no {model_format} model (present: {', '.join(present) or 'none'})"
        )
    family = {"onnx": "onnx", "onnx-int8": "onnx", "torchscript": "torchscript"}.get(model_format, "torch")
    return path, family


def open_engine(
    model_ref: str | Path,
    engine: str = "auto",
    device: str = "cpu",
    *,
    dtype: str | None = None,
    model_format: str = "auto",
    processor_path: str | Path | None = None,
    decoder: str = DEFAULT_DECODER,
    decoder_options: Mapping[str, Any] | None = None,
) -> GenerationEngine:
    """Open a generation engine for a model reference.

    Args:
        model_ref: base model name/path, trained checkpoint folder, published model folder, or an
            ONNX/TorchScript export.
        engine: ``torch`` (Hugging Face ``generate``), ``fast`` (static KV cache + CUDA graphs, see
            ``fast_engine``), ``onnx`` (ONNX Runtime), ``torchscript``, or ``auto``: the one the
            format needs, and for torch models ``fast`` on CUDA, ``torch`` elsewhere.
        device: ``auto``, ``cpu`` or ``cuda[:N]``; for ONNX, any ``cuda`` device selects the CUDA provider.
        dtype: torch dtype name (``auto``, ``float32``, ``bfloat16``, ``float16``) for torch and fast.
        model_format: which artifact of a model folder to load (see :func:`locate_format`);
            ``onnx-int8`` selects the INT8 ONNX files.
        processor_path: ONNX only: folder holding the processor when it is not beside the export.
        decoder: the registered audio decoder turning codes into audio (``encodec`` by default; see
            ``pipeline.inference.decoders``); for exports, ``encodec`` is the exported codec part.
        decoder_options: keyword options of that decoder's factory (``mbd``: ``weights``,
            ``sampling_steps``).

    Raises:
        ValueError: unknown engine or decoder, or an engine that cannot run the format.
        ModelNotAvailableError: the model cannot be found or loaded, or the ONNX engine is not installed.
        DeviceNotAvailableError: a CUDA device was asked for and none is visible.
    """
    if engine not in ENGINES:
        raise ValueError(f"unknown engine {engine!r}; choose one of {', '.join(ENGINES)}")
    if decoder not in available_decoders():
        raise ValueError(
            f"unknown audio decoder {decoder!r}; choose one of {', '.join(available_decoders())}"
        )
    device = resolve_device(device)
    dtype = resolve_dtype(dtype, device)
    path = Path(model_ref).expanduser()
    family = "onnx" if engine == "onnx" else "torchscript" if engine == "torchscript" else "torch"
    if path.is_dir() and not (engine in ("onnx", "torchscript") and model_format == "auto"):
        path, family = locate_format(path, model_format if model_format != "auto" else _default(engine))
        model_ref = path
    asked = engine
    if engine == "auto":
        engine = family if family != "torch" else ("fast" if device.startswith("cuda") else "torch")
    elif not (engine in ("torch", "fast") if family == "torch" else engine == family):
        raise ValueError(f"engine {engine!r} cannot run a {model_format} model; use engine auto or {family}")
    if engine in ("torchscript", "onnx") and path.exists():
        from musicgen_ops.pipeline.export.manifest import verify_export

        verify_export(model_ref)  # a truncated or modified export fails here, clearly
    options = dict(decoder_options or {})
    exported_decoder = (
        None
        if decoder == DEFAULT_DECODER or engine not in ("torchscript", "onnx")
        else build_decoder(decoder, model=None, device=device, **options)
    )
    if engine == "fast":
        from musicgen_ops.pipeline.inference.fast_engine import FastGenerationEngine

        # load_model leaves the weights on the CPU; the engine moves only what it runs to the device.
        loaded = load_model(model_ref)
        if not fast_engine_supports(loaded, asked):
            return _torch_engine(loaded, device, dtype, decoder, options)
        return FastGenerationEngine(
            loaded,
            device=device,
            dtype=dtype,
            decoder=build_decoder(decoder, model=loaded.model, device=device, **options),
        )
    if engine == "torchscript":
        from musicgen_ops.pipeline.inference.torchscript_engine import TorchScriptInferenceEngine

        return TorchScriptInferenceEngine(
            model_ref,
            processor_path=processor_path,
            use_gpu=device.startswith("cuda"),
            decoder=exported_decoder,
        )
    if engine == "onnx":
        if not onnx_available():
            raise ModelNotAvailableError(
                f"engine 'onnx' needs {ONNX_ENGINE_MODULE} and onnxruntime "
                "(pip install 'musicgen-ops[export]')"
            )
        from musicgen_ops.pipeline.inference.onnx_engine import ONNXInferenceEngine

        if not path.exists():
            raise ModelNotAvailableError(f"ONNX model {path} does not exist")
        return ONNXInferenceEngine(
            str(path),
            processor_path=str(processor_path) if processor_path else None,
            use_gpu=device.startswith("cuda"),
            precision={"onnx": "fp32", "onnx-int8": "int8"}.get(model_format, "auto"),
            decoder=exported_decoder,
        )
    return _torch_engine(load_model(model_ref), device, dtype, decoder, options)


def engine_for_decoder(
    engine: Any, decoder: str, decoder_options: Mapping[str, Any] | None = None
) -> Any | None:
    """A view of a loaded torch or fast engine decoding with ``decoder``: the same weights on the device,
    only the decoder built anew (``with_decoder``); None for engines that cannot share (exports).

    Raises:
        ValueError: unknown decoder, or one that cannot decode this model.
    """
    if not callable(getattr(engine, "with_decoder", None)) or getattr(engine, "model", None) is None:
        return None
    if decoder not in available_decoders():
        raise ValueError(
            f"unknown audio decoder {decoder!r}; choose one of {', '.join(available_decoders())}"
        )
    built = build_decoder(decoder, model=engine.model, device=engine.device, **dict(decoder_options or {}))
    return engine.with_decoder(built)


def _torch_engine(
    loaded: LoadedModel, device: str, dtype: str | None, decoder: str, options: Mapping[str, Any]
) -> GenerationEngine:
    from musicgen_ops.pipeline.inference.torch_engine import TorchEngine

    return TorchEngine(
        loaded,
        device=device,
        dtype=dtype,
        decoder=build_decoder(decoder, model=loaded.model, device=device, **options),
    )


def fast_engine_supports(loaded: LoadedModel, asked: str) -> bool:
    """Whether the fast engine runs this model's family; ``auto`` falls back to torch (False) for a
    musicgen-melody model, an explicit ``fast`` is refused.

    Raises:
        UnsupportedModelError: engine ``fast`` was asked for a musicgen-melody model.
    """
    if loaded.family == "musicgen":
        return True
    if asked == "auto":
        logger.info("%s is a %s model: generating with the torch engine", loaded.name, loaded.family)
        return False
    raise UnsupportedModelError(
        f"engine 'fast' does not run {loaded.family} models ({loaded.name}): use engine torch or auto"
    )


def _default(engine: str) -> str:
    """The format an engine loads from a model folder when none is named."""
    return {"onnx": "onnx", "torchscript": "torchscript"}.get(engine, "auto")
