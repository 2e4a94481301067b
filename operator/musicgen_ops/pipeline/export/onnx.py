"""Export the generation parts to ONNX (one graph per part) and check each with ``onnx.checker``.

The two decoder graphs keep their weights once, in ``decoder.onnx.data`` (see
:mod:`musicgen_ops.pipeline.export.weights`); a part over 2 GB gets ``<part>.onnx.data`` beside it.

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
from musicgen_ops.pipeline.export.weights import external_locations, share_external_weights

if TYPE_CHECKING:
    import torch

logger = logging.getLogger(__name__)

MIN_OPSET = 14
MAX_OPSET = 20  # the TorchScript-based exporter's newest opset in torch 2.x
DEFAULT_OPSET = 17
#: Parts whose graphs share one weights file, and its name (per precision: ``decoder.int8.onnx.data``).
SHARED_WEIGHT_PARTS = ("decoder_init", "decoder_step")
DECODER_WEIGHTS = "decoder.onnx.data"


def store_weights(folder: Path, specs: dict[str, PartSpec], precision: str) -> None:
    """Store each ``precision`` graph's weights once: the decoders in one shared file, any other part
    that needed external data (over 2 GB) in ``<file>.data``; record the files in ``spec.weights``."""
    shared = [folder / specs[name].files[precision] for name in SHARED_WEIGHT_PARTS]
    weights = DECODER_WEIGHTS if precision == "fp32" else f"decoder.{precision}.onnx.data"
    share_external_weights(shared, weights)
    for name in SHARED_WEIGHT_PARTS:
        specs[name].weights[precision] = weights
    for name, spec in specs.items():
        graph = folder / spec.files[precision]
        if name in SHARED_WEIGHT_PARTS or spec.weights.get(precision) or not external_locations(graph):
            continue
        spec.weights[precision] = share_external_weights([graph], graph.name + ".data").name


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
            onnx.checker.check_model(str(path), full_check=not external_locations(path))
        except Exception as err:
            raise ExportError(
                f"ONNX export of part {name!r} to {path} failed: {type(err).__name__}: {err}"
            ) from err
        logger.info("exported %s (%.1f MB)", path.name, path.stat().st_size / 1e6)
        specs[name] = PartSpec(files={"fp32": path.name}, inputs=inputs, outputs=outputs)
    assert list(specs) == list(PART_NAMES)
    store_weights(folder, specs, "fp32")
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
