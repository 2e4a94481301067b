"""Trace the generation parts to TorchScript files loadable with ``torch.jit.load`` (no project needed).

All four parts trace: they take and return plain tensors, and their shape arithmetic (cache length,
positions, masks) is traced as tensor ops, so the traced graphs accept any batch, text length, decoder
length and cache length (checked by the tests). Nothing is scripted: transformers modules are not
scriptable, and tracing needs no control flow here (the number of layers and codebooks is fixed).

Tracing records the device of every tensor created inside a part (``torch.arange(..., device=x.device)``,
masks, the EnCodec LSTM's zero state, transformers' T5 mask) as a ``torch.device("cpu")`` constant, so
a part traced on the CPU would build those tensors on the CPU wherever it runs. :func:`device_from_inputs`
rewrites each graph so these devices come from the part's own input tensors: the saved parts hold no
device constant and run on whatever device ``torch.jit.load(..., map_location=...)`` puts them.
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
                device_from_inputs(traced)
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


def device_from_inputs(traced: torch.jit.ScriptModule) -> int:
    """Replace every device constant in ``traced`` (and its submodules) by the device of the graph's
    first tensor input; returns how many were replaced.

    Raises:
        ExportError: a graph holds a device constant but takes no tensor to read the device from.
    """
    replaced = 0
    for module, graph in _graphs(traced):
        constants = [
            node
            for node in graph.nodes()
            if node.kind() == "prim::Constant" and node.output().type().kind() == "DeviceObjType"
        ]
        if not constants:
            continue
        source = next((v for v in graph.inputs() if v.type().kind() == "TensorType"), None)
        if source is None:
            raise ExportError(f"traced {type(module).__name__} fixes a device but takes no tensor input")
        for node in constants:
            device = graph.create("prim::device", [source])
            device.output().setType(node.output().type())
            device.insertBefore(node)
            node.output().replaceAllUsesWith(device.output())
            node.destroy()
            replaced += 1
    return replaced


def _graphs(traced: torch.jit.ScriptModule):
    """``(module, graph)`` of every method of ``traced`` and its submodules (a submodule called twice
    while tracing has a second method, ``forward1``, beside ``forward``)."""
    for module in traced.modules():
        methods = getattr(getattr(module, "_c", None), "_method_names", None)
        for name in methods() if methods is not None else ():
            yield module, module._c._get_method(name).graph


def device_constants(module: torch.jit.ScriptModule) -> list[str]:
    """The device constants left in a (loaded) TorchScript module's inlined graph, as graph lines."""
    return [
        line.strip() for line in str(module.inlined_graph).splitlines() if "Device = prim::Constant" in line
    ]


def _verify(loaded, module, example, name: str) -> None:
    import torch

    if leftover := device_constants(loaded):
        raise ExportError(f"traced part {name!r} still fixes a device: {leftover[0]}")
    expected = module(*example)
    got = loaded(*example)
    expected = expected if isinstance(expected, tuple) else (expected,)
    got = got if isinstance(got, tuple) else (got,)
    for want, have in zip(expected, got, strict=True):
        if not torch.allclose(want, have, atol=1e-5, rtol=1e-4):
            raise ExportError(f"traced part {name!r} does not reproduce the eager module's outputs")
