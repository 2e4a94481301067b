"""``MusicGenExporter``: a trained (LoRA) MusicGen to merged weights, TorchScript, ONNX and INT8 ONNX.

Layout written by :func:`export_trained_model_from_checkpoint` (each folder also holds the processor)::

    <output_dir>/export_manifest.json   every file with size and sha256, written last
    <output_dir>/merged/                save_pretrained of the merged model (loadable by transformers)
    <output_dir>/onnx/                  descriptor.json + <part>.onnx and/or <part>.int8.onnx
    <output_dir>/torchscript/           descriptor.json + <part>.pt
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from musicgen_ops.pipeline.errors import ExportError
from musicgen_ops.pipeline.export.descriptor import ExportDescriptor, constants_from_model
from musicgen_ops.pipeline.export.manifest import staged_directory, write_manifest
from musicgen_ops.pipeline.export.merge import merge_lora
from musicgen_ops.pipeline.export.onnx import DEFAULT_OPSET, check_opset
from musicgen_ops.pipeline.melody import melody_checkpoint_error

logger = logging.getLogger(__name__)

#: Formats :func:`export_trained_model_from_checkpoint` can write, in the order it writes them.
FORMATS = ("merged", "torchscript", "onnx", "onnx-int8")
METADATA_NAME = "training_metadata.json"
_PROCESSOR_FILES = ("tokenizer_config.json", "processor_config.json", "preprocessor_config.json")

ProgressCallback = Callable[[str], None]


class MusicGenExporter:
    """Export a trained MusicGen; LoRA adapters are merged first, so every output is a plain model.

    Args:
        trained_model: a ``peft.PeftModel`` around ``MusicgenForConditionalGeneration``, or a plain one.
        processor: the ``MusicgenProcessor`` (saved beside every export so engines need no other path).
        source: free-form provenance recorded in descriptors (base model, checkpoint path, ...).
        inplace_merge: merge into ``trained_model`` instead of a copy (less memory; the PEFT model is spent).
    """

    def __init__(
        self,
        trained_model: Any,
        processor: Any,
        *,
        source: dict[str, Any] | None = None,
        inplace_merge: bool = False,
    ) -> None:
        if processor is None:
            raise ExportError("a processor is required: engines tokenize prompts with it")
        from peft import PeftModel

        self.was_peft = isinstance(trained_model, PeftModel)
        self.model = merge_lora(trained_model, inplace=inplace_merge)
        self.processor = processor
        self.constants = constants_from_model(self.model)
        self.source = {"merged_lora": self.was_peft, **(source or {})}
        self._parts: dict[str, Any] | None = None

    @property
    def parts(self) -> dict[str, Any]:
        """The four generation parts (built on first use)."""
        if self._parts is None:
            from musicgen_ops.pipeline.export.parts import build_parts

            self._parts = build_parts(self.model)
        return self._parts

    def export_merged(self, output_path: str | Path) -> Path:
        """``save_pretrained`` the merged model and the processor into ``output_path``."""
        with staged_directory(output_path) as staging:
            self._write_merged(staging)
        return Path(output_path)

    def export_to_onnx(
        self,
        output_path: str | Path,
        opset_version: int = DEFAULT_OPSET,
        quantize: bool = False,
        *,
        keep_fp32: bool = True,
        verify: bool = True,
    ) -> ExportDescriptor:
        """Export the four parts as ONNX into ``output_path`` with ``descriptor.json`` and the processor.

        Args:
            output_path: folder to (re)create.
            opset_version: ONNX opset, 14..20.
            quantize: also write ``<part>.int8.onnx`` (dynamic INT8 quantization).
            keep_fp32: with ``quantize``, keep the float32 files too (False: INT8 only).
            verify: run every part once with ONNX Runtime and compare it with PyTorch.
        """
        check_opset(opset_version)
        with staged_directory(output_path) as staging:
            descriptor = self._write_onnx(staging, opset_version, quantize, keep_fp32, verify)
        return descriptor

    def export_to_torchscript(self, output_path: str | Path) -> ExportDescriptor:
        """Trace the four parts to ``<part>.pt`` in ``output_path`` (+ ``descriptor.json``, processor)."""
        with staged_directory(output_path) as staging:
            descriptor = self._write_torchscript(staging)
        return descriptor

    def _write_merged(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.model.save_pretrained(folder)
        self.processor.save_pretrained(folder)

    def _write_onnx(
        self, folder: Path, opset: int, quantize: bool, keep_fp32: bool, verify: bool
    ) -> ExportDescriptor:
        from musicgen_ops.pipeline.export.onnx import export_parts_to_onnx, verify_onnx_parts
        from musicgen_ops.pipeline.export.quantize import add_int8_variants

        specs = export_parts_to_onnx(self.parts, self.constants, folder, opset)
        if verify:
            verify_onnx_parts(self.parts, self.constants, folder, specs)
        if quantize:
            add_int8_variants(folder, specs)
            if not keep_fp32:
                for spec in specs.values():
                    spec.weights.pop("fp32", None)
                    fp32 = spec.files.pop("fp32")
                    if fp32 not in spec.files.values():
                        (folder / fp32).unlink()
                kept = {f for spec in specs.values() for f in [*spec.files.values(), *spec.weights.values()]}
                for path in folder.glob("*.onnx.data"):
                    if path.name not in kept:
                        path.unlink()
        descriptor = ExportDescriptor("onnx", self.constants, specs, opset=opset, source=self.source)
        descriptor.save(folder)
        self.processor.save_pretrained(folder)
        return descriptor

    def _write_torchscript(self, folder: Path) -> ExportDescriptor:
        from musicgen_ops.pipeline.export.torchscript import export_parts_to_torchscript

        specs = export_parts_to_torchscript(self.parts, self.constants, folder)
        descriptor = ExportDescriptor("torchscript", self.constants, specs, source=self.source)
        descriptor.save(folder)
        self.processor.save_pretrained(folder)
        return descriptor


def parse_formats(formats: str | Iterable[str]) -> list[str]:
    """Normalise ``"onnx,onnx-int8"`` or a list into known format names (in :data:`FORMATS` order)."""
    items = formats.split(",") if isinstance(formats, str) else list(formats)
    names = {str(item).strip().lower() for item in items if str(item).strip()}
    unknown = sorted(names - set(FORMATS))
    if unknown:
        raise ExportError(f"unknown export format(s) {', '.join(unknown)}: choose from {', '.join(FORMATS)}")
    if not names:
        raise ExportError(f"no export format given: choose from {', '.join(FORMATS)}")
    return [f for f in FORMATS if f in names]


def load_checkpoint(checkpoint_path: str | Path) -> tuple[Any, Any, dict[str, Any]]:
    """Load ``final_model/`` (a PEFT adapter + processor + training_metadata.json) or a merged model folder.

    Returns:
        ``(model, processor, metadata)`` where ``model`` is a ``PeftModel`` for adapter checkpoints.

    Raises:
        ExportError: the path is not a checkpoint, lacks its metadata or processor, or does not load.
    """
    from musicgen_ops.pipeline.models import load_base_model

    path = Path(checkpoint_path).expanduser()
    if not path.is_dir():
        raise ExportError(f"checkpoint {path} does not exist or is not a folder")
    is_adapter = (path / "adapter_config.json").is_file()
    is_full = (path / "config.json").is_file()
    if not (is_adapter or is_full):
        raise ExportError(
            f"{path} is not a checkpoint: expected adapter_config.json + adapter_model.safetensors "
            "(a LoRA final_model/ folder) or config.json (a merged save_pretrained folder)"
        )
    if not any((path / name).is_file() for name in _PROCESSOR_FILES):
        raise ExportError(
            f"{path} holds no processor (none of {', '.join(_PROCESSOR_FILES)}): save it beside the model "
            "with processor.save_pretrained(...)"
        )
    if (melody_error := melody_checkpoint_error(path)) is not None:
        raise ExportError(melody_error)
    metadata: dict[str, Any] = {}
    if (path / METADATA_NAME).is_file():
        try:
            metadata = json.loads((path / METADATA_NAME).read_text())
        except ValueError as err:
            raise ExportError(f"{path / METADATA_NAME} is not valid JSON: {err}") from err
    from transformers import AutoProcessor

    try:
        processor = AutoProcessor.from_pretrained(str(path))
    except (OSError, ValueError, TypeError) as err:
        raise ExportError(f"cannot load the processor saved in {path}: {type(err).__name__}: {err}") from err
    if not is_adapter:
        return load_base_model(str(path)).model, processor, metadata

    base_name = metadata.get("base_model")
    if not isinstance(base_name, str) or not base_name:
        raise ExportError(
            f'{path / METADATA_NAME} is missing or has no "base_model": cannot tell which base model the '
            "LoRA adapter belongs to"
        )
    from peft import PeftModel
    from safetensors import SafetensorError

    base = load_base_model(base_name)
    if base.family != "musicgen":
        raise ExportError(f"{path}: base model {base_name} is {base.family}; export supports musicgen only")
    try:
        model = PeftModel.from_pretrained(base.model, str(path))
    except (OSError, ValueError, KeyError, RuntimeError, SafetensorError) as err:  # truncated weights too
        raise ExportError(
            f"cannot apply the LoRA adapter in {path} to base model {base_name!r}: "
            f"{type(err).__name__}: {err}"
        ) from err
    model.eval()
    return model, processor, metadata


def export_trained_model_from_checkpoint(
    checkpoint_path: str | Path,
    output_dir: str | Path,
    formats: str | Iterable[str] = FORMATS,
    *,
    opset_version: int = DEFAULT_OPSET,
    progress: ProgressCallback | None = None,
) -> dict[str, Any]:
    """Load a training checkpoint, merge its LoRA adapter and write the requested formats.

    Everything is written into a temporary folder beside ``output_dir`` and renamed at the end, so a
    failed export leaves nothing half-written. Returns the ``export_manifest.json`` content.

    Args:
        checkpoint_path: ``<training output>/final_model`` (adapter, processor, training_metadata.json)
            or a merged ``save_pretrained`` folder.
        output_dir: folder to (re)create.
        formats: any of ``merged``, ``torchscript``, ``onnx``, ``onnx-int8`` (list or comma-separated).
        opset_version: ONNX opset, 14..20.
        progress: called with a short line before each step.
    """
    wanted = parse_formats(formats)
    check_opset(opset_version)
    say = progress or (lambda message: logger.info("%s", message))
    say(f"loading checkpoint {checkpoint_path}")
    model, processor, metadata = load_checkpoint(checkpoint_path)
    source = {"checkpoint": str(Path(checkpoint_path).expanduser().resolve())}
    if metadata.get("base_model"):
        source["base_model"] = metadata["base_model"]
    say("merging LoRA weights" if _is_peft(model) else "model has no adapter: exporting as is")
    exporter = MusicGenExporter(model, processor, source=source, inplace_merge=True)
    with staged_directory(output_dir) as staging:
        if "merged" in wanted:
            say("writing merged weights")
            exporter._write_merged(staging / "merged")
        if "torchscript" in wanted:
            say("tracing TorchScript parts")
            exporter._write_torchscript(staging / "torchscript")
        if "onnx" in wanted or "onnx-int8" in wanted:
            say("exporting ONNX parts" + (" and INT8 variants" if "onnx-int8" in wanted else ""))
            exporter._write_onnx(
                staging / "onnx",
                opset_version,
                quantize="onnx-int8" in wanted,
                keep_fp32="onnx" in wanted,
                verify=True,
            )
        say("writing export_manifest.json")
        manifest = write_manifest(staging, wanted, {**exporter.source, "training_metadata": metadata})
    return manifest


def _is_peft(model: Any) -> bool:
    from peft import PeftModel

    return isinstance(model, PeftModel)
