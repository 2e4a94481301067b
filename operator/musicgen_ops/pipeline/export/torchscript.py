"""Trace the generation parts to TorchScript files loadable with ``torch.jit.load`` (no project needed).

All four parts trace: they take and return plain tensors, and their shape arithmetic (cache length,
positions, masks) is traced as tensor ops, so the traced graphs accept any batch, text length, decoder
length and cache length (checked by the tests). Nothing is scripted: transformers modules are not
scriptable, and tracing needs no control flow here (the number of layers and codebooks is fixed).
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

from musicgen_ops.pipeline.errors import ExportError
from musicgen_ops.pipeline.export.descriptor import ModelConstants, PartSpec, part_io
from musicgen_ops.pipeline.export.onnx import example_inputs

if TYPE_CHECKING:
    import torch

logger = logging.getLogger(__name__)


def export_parts_to_torchscript(
    parts: dict[str, torch.nn.Module], constants: ModelConstants, folder: Path
) -> dict[str, PartSpec]:
    """Write ``<part>.pt`` (traced, frozen to eval) for every part; check each reloads and matches."""
    import torch

    folder.mkdir(parents=True, exist_ok=True)
    examples = example_inputs(parts, constants)
    specs: dict[str, PartSpec] = {}
    for name, (inputs, outputs) in part_io(constants).items():
        path = folder / f"{name}.pt"
        try:
            with warnings.catch_warnings(), torch.no_grad():
                warnings.simplefilter("ignore")  # tracer warnings about shape-derived Python values
                traced = torch.jit.trace(parts[name], examples[name], check_trace=False)
                torch.jit.save(traced, str(path))
                _verify(torch.jit.load(str(path)), parts[name], examples[name], name)
        except ExportError:
            raise
        except Exception as err:
            raise ExportError(
                f"TorchScript export of part {name!r} failed: {type(err).__name__}: {err}"
            ) from err
        logger.info("traced %s (%.1f MB)", path.name, path.stat().st_size / 1e6)
        specs[name] = PartSpec(files={"fp32": path.name}, inputs=inputs, outputs=outputs)
    return specs


def _verify(loaded, module, example, name: str) -> None:
    import torch

    expected = module(*example)
    got = loaded(*example)
    expected = expected if isinstance(expected, tuple) else (expected,)
    got = got if isinstance(got, tuple) else (got,)
    for want, have in zip(expected, got, strict=True):
        if not torch.allclose(want, have, atol=1e-5, rtol=1e-4):
            raise ExportError(f"traced part {name!r} does not reproduce the eager module's outputs")
