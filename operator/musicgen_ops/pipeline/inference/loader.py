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
from pathlib import Path
from typing import Any

from musicgen_ops.pipeline.errors import ModelNotAvailableError
from musicgen_ops.pipeline.inference.base import GenerationEngine
from musicgen_ops.pipeline.inference.decoders import DEFAULT_DECODER, available_decoders, build_decoder
from musicgen_ops.pipeline.models import LoadedModel, load_base_model

logger = logging.getLogger(__name__)

ENGINES = ("auto", "torch", "fast", "onnx")
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
    from transformers import AutoProcessor

    folder = Path(folder)
    metadata = read_training_metadata(folder)
    base = load_base_model(metadata["base_model"])
    try:
        merged = PeftModel.from_pretrained(base.model, str(folder)).merge_and_unload()
    except (OSError, ValueError, KeyError, RuntimeError) as err:
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


def open_engine(
    model_ref: str | Path,
    engine: str = "auto",
    device: str = "cpu",
    *,
    dtype: str | None = None,
    processor_path: str | Path | None = None,
    decoder: str = DEFAULT_DECODER,
) -> GenerationEngine:
    """Open a generation engine for a model reference.

    Args:
        model_ref: base model name/path, trained checkpoint folder, or (``engine="onnx"``) ONNX export.
        engine: ``torch`` (Hugging Face ``generate``), ``fast`` (static KV cache + CUDA graphs, see
            ``fast_engine``), ``onnx`` (ONNX Runtime), or ``auto``: ``fast`` on CUDA, ``torch`` elsewhere.
        device: ``cpu`` or ``cuda[:N]``; for ONNX, any ``cuda`` device selects the CUDA provider.
        dtype: torch dtype name for the torch engine (``float32``, ``bfloat16``, ``float16``).
        processor_path: ONNX only: folder holding the processor when it is not beside the export.
        decoder: the registered audio decoder turning codes into audio (``encodec`` by default; see
            ``pipeline.inference.decoders``); for ONNX, ``encodec`` is the exported codec part.

    Raises:
        ValueError: unknown engine or decoder.
        ModelNotAvailableError: the model cannot be found or loaded, or the ONNX engine is not installed.
    """
    if engine not in ENGINES:
        raise ValueError(f"unknown engine {engine!r}; choose one of {', '.join(ENGINES)}")
    if decoder not in available_decoders():
        raise ValueError(
            f"unknown audio decoder {decoder!r}; choose one of {', '.join(available_decoders())}"
        )
    if engine == "auto":
        engine = "fast" if str(device).startswith("cuda") else "torch"
    if engine == "fast":
        from musicgen_ops.pipeline.inference.fast_engine import FastGenerationEngine

        # load_model leaves the weights on the CPU; the engine moves only what it runs to the device.
        loaded = load_model(model_ref)
        return FastGenerationEngine(
            loaded,
            device=device,
            dtype=dtype,
            decoder=build_decoder(decoder, model=loaded.model, device=device),
        )
    if engine == "onnx":
        if not onnx_available():
            raise ModelNotAvailableError(
                f"engine 'onnx' needs {ONNX_ENGINE_MODULE} and onnxruntime "
                "(pip install 'musicgen-ops[export]')"
            )
        from musicgen_ops.pipeline.inference.onnx_engine import ONNXInferenceEngine

        path = Path(model_ref).expanduser()
        if not path.exists():
            raise ModelNotAvailableError(f"ONNX model {path} does not exist")
        return ONNXInferenceEngine(
            str(path),
            processor_path=str(processor_path) if processor_path else None,
            use_gpu=device.startswith("cuda"),
            decoder=None if decoder == DEFAULT_DECODER else build_decoder(decoder, model=None, device=device),
        )
    from musicgen_ops.pipeline.inference.torch_engine import TorchEngine

    loaded = load_model(model_ref)
    return TorchEngine(
        loaded, device=device, dtype=dtype, decoder=build_decoder(decoder, model=loaded.model, device=device)
    )
