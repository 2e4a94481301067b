"""Export the generation parts to ONNX (one file per part) and check each with ``onnx.checker``.

Uses torch's TorchScript-based exporter (``dynamo=False``): with torch 2.13 the dynamo exporter fails on
the T5 text encoder's reshapes under dynamic sequence length, while the TorchScript-based one gives graphs
with dynamic batch, text length, decoder length and cache length (checked by the tests).
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

from musicgen_ops.pipeline.errors import ExportError
from musicgen_ops.pipeline.export.descriptor import PART_NAMES, ModelConstants, PartSpec, part_io

if TYPE_CHECKING:
    import torch

logger = logging.getLogger(__name__)

MIN_OPSET = 14
MAX_OPSET = 20  # the TorchScript-based exporter's newest opset in torch 2.x
DEFAULT_OPSET = 17


def check_opset(opset_version: int) -> int:
    """Return ``opset_version`` if this exporter supports it, else raise :class:`ExportError`."""
    if not isinstance(opset_version, int) or isinstance(opset_version, bool):
        raise ExportError(f"opset_version must be an integer, got {opset_version!r}")
    if not MIN_OPSET <= opset_version <= MAX_OPSET:
        raise ExportError(
            f"unsupported ONNX opset_version {opset_version}: choose {MIN_OPSET}..{MAX_OPSET} "
            f"(default {DEFAULT_OPSET})"
        )
    return opset_version


def example_inputs(
    parts: dict[str, torch.nn.Module], constants: ModelConstants
) -> dict[str, tuple[torch.Tensor, ...]]:
    """Example tensors for tracing: batch 2, a padded text, a few frames (no axis of size 1 but length)."""
    import torch

    batch, text_len, k = 2, 5, constants.num_codebooks
    ids = torch.randint(3, 20, (batch, text_len))
    mask = torch.ones(batch, text_len, dtype=torch.long)
    mask[1, 3:] = 0
    dec_ids = torch.full((batch, k, 1), constants.bos_token_id, dtype=torch.long)
    with torch.no_grad():
        hidden = parts["text_encoder"](ids, mask)
        past = parts["decoder_init"](dec_ids, hidden, mask)[1:]
    codes = torch.randint(0, constants.vocab_size, (batch, k, 7))
    return {
        "text_encoder": (ids, mask),
        "decoder_init": (dec_ids, hidden, mask),
        "decoder_step": (dec_ids, mask, *past),
        "audio_decoder": (codes,),
    }


def export_parts_to_onnx(
    parts: dict[str, torch.nn.Module],
    constants: ModelConstants,
    folder: Path,
    opset_version: int = DEFAULT_OPSET,
) -> dict[str, PartSpec]:
    """Write ``<part>.onnx`` for every part into ``folder``; return their specs (fp32 files only)."""
    import onnx
    import torch

    check_opset(opset_version)
    folder.mkdir(parents=True, exist_ok=True)
    examples = example_inputs(parts, constants)
    specs: dict[str, PartSpec] = {}
    for name, (inputs, outputs) in part_io(constants).items():
        path = folder / f"{name}.onnx"
        dynamic_axes = {t.name: t.dynamic_axes() for t in [*inputs, *outputs]}
        try:
            with warnings.catch_warnings(), torch.no_grad():
                warnings.simplefilter("ignore")  # tracer warnings about shape-derived Python values
                torch.onnx.export(
                    parts[name],
                    examples[name],
                    str(path),
                    input_names=[t.name for t in inputs],
                    output_names=[t.name for t in outputs],
                    dynamic_axes=dynamic_axes,
                    opset_version=opset_version,
                    dynamo=False,
                    do_constant_folding=True,
                )
            onnx.checker.check_model(str(path), full_check=True)
        except Exception as err:
            raise ExportError(
                f"ONNX export of part {name!r} to {path} failed: {type(err).__name__}: {err}"
            ) from err
        logger.info("exported %s (%.1f MB)", path.name, path.stat().st_size / 1e6)
        specs[name] = PartSpec(files={"fp32": path.name}, inputs=inputs, outputs=outputs)
    assert list(specs) == list(PART_NAMES)
    return specs


def verify_onnx_parts(
    parts: dict[str, torch.nn.Module],
    constants: ModelConstants,
    folder: Path,
    specs: dict[str, PartSpec],
    atol: float = 1e-3,
) -> None:
    """Run each exported part once with ONNX Runtime on fresh shapes and compare with PyTorch."""
    import numpy as np
    import onnxruntime as ort
    import torch

    examples = example_inputs(parts, constants)
    for name, spec in specs.items():
        session = ort.InferenceSession(str(folder / spec.files["fp32"]), providers=["CPUExecutionProvider"])
        feeds = {n: t.numpy() for n, t in zip(spec.input_names, examples[name], strict=True)}
        with torch.no_grad():
            expected = parts[name](*examples[name])
        expected = expected if isinstance(expected, tuple) else (expected,)
        for out_name, want, have in zip(spec.output_names, expected, session.run(None, feeds), strict=True):
            diff = float(np.max(np.abs(want.numpy() - have))) if want.numel() else 0.0
            scale = max(1.0, float(want.abs().max()))
            if diff > atol * scale:
                raise ExportError(
                    f"ONNX part {name!r} output {out_name!r} differs from PyTorch by {diff:.3g} "
                    f"(> {atol * scale:.3g})"
                )
