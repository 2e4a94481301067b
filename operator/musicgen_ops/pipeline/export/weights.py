"""ONNX weights stored once: graphs whose initializers live in one shared external-data file.

``decoder_init`` and ``decoder_step`` are two graphs over the same decoder weights; written naively, each
file embeds its own copy (musicgen-small: 1.7 GB + 1.5 GB). :func:`share_external_weights` rewrites a set
of graphs so that every initializer of at least :data:`MIN_EXTERNAL_BYTES` is stored in one file, each
distinct tensor once (tensors are matched by dtype, shape and content, so the transposed copies that
constant folding makes of a weight are shared too). It also makes graphs over 2 GB possible: a protobuf
cannot exceed 2 GB, the external file can. Offsets are page aligned, so ONNX Runtime can map the file.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

from musicgen_ops.pipeline.errors import ExportError

logger = logging.getLogger(__name__)

#: Smaller initializers (shapes, scales, zero points) stay inside the graph.
MIN_EXTERNAL_BYTES = 1024
_ALIGN = 4096


def external_locations(path: Path) -> set[str]:
    """Files (relative to the graph's folder) that the graph at ``path`` reads external data from."""
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    return {
        entry.value
        for tensor in _initializers(model)
        if tensor.data_location == onnx.TensorProto.EXTERNAL
        for entry in tensor.external_data
        if entry.key == "location"
    }


def share_external_weights(graphs: list[Path], weights_name: str) -> Path:
    """Move the large initializers of ``graphs`` (all in one folder) into ``weights_name``, each once.

    Each graph file is rewritten in place to reference the shared file; external data files the graphs
    used before (e.g. the per-tensor files of a > 2 GB export) are deleted. Returns the weights file.
    """
    import onnx

    if not graphs:
        raise ExportError("share_external_weights needs at least one graph")
    folder = graphs[0].parent
    if any(g.parent != folder for g in graphs):
        raise ExportError(f"graphs sharing {weights_name} must be in one folder: {[str(g) for g in graphs]}")
    target = folder / weights_name
    old_files = {name for g in graphs for name in external_locations(g)} - {weights_name}
    offsets: dict[tuple[int, tuple[int, ...], str], tuple[int, int]] = {}
    stored = total = 0
    partial = target.with_name(target.name + ".partial")
    try:
        with partial.open("wb") as out:
            for graph in graphs:
                model = onnx.load(str(graph), load_external_data=True)
                for tensor in _initializers(model):
                    data = _raw_bytes(tensor)
                    if len(data) < MIN_EXTERNAL_BYTES:
                        continue
                    total += len(data)
                    key = (tensor.data_type, tuple(tensor.dims), hashlib.sha256(data).hexdigest())
                    if key not in offsets:
                        pad = -out.tell() % _ALIGN
                        out.write(b"\0" * pad)
                        offsets[key] = (out.tell(), len(data))
                        out.write(data)
                        stored += len(data)
                    offset, length = offsets[key]
                    _point_at(tensor, weights_name, offset, length)
                onnx.save(model, str(graph))
                del model
        partial.replace(target)
        for graph in graphs:
            onnx.checker.check_model(str(graph))
    except ExportError:
        raise
    except Exception as err:
        raise ExportError(
            f"cannot store the weights of {', '.join(g.name for g in graphs)} in {target}: "
            f"{type(err).__name__}: {err}"
        ) from err
    finally:
        partial.unlink(missing_ok=True)
    for name in old_files:
        (folder / name).unlink(missing_ok=True)
    logger.info(
        "%s: %.1f MB of weights for %s (%.1f MB before sharing)",
        weights_name,
        stored / 1e6,
        ", ".join(g.name for g in graphs),
        total / 1e6,
    )
    return target


def _initializers(model) -> list:
    """Every initializer of the main graph and of its subgraphs."""
    import onnx

    found = list(model.graph.initializer)
    for node in model.graph.node:
        for attribute in node.attribute:
            if attribute.type == onnx.AttributeProto.GRAPH:
                found += list(attribute.g.initializer)
    return found


def _raw_bytes(tensor) -> bytes:
    from onnx import numpy_helper

    if tensor.HasField("raw_data"):
        return tensor.raw_data
    return numpy_helper.to_array(tensor).tobytes()


def _point_at(tensor, location: str, offset: int, length: int) -> None:
    """Make ``tensor`` read ``length`` bytes at ``offset`` of ``location`` instead of holding them."""
    import onnx

    for field in ("float_data", "int32_data", "int64_data", "double_data", "uint64_data", "string_data"):
        tensor.ClearField(field)
    tensor.ClearField("raw_data")
    del tensor.external_data[:]
    tensor.data_location = onnx.TensorProto.EXTERNAL
    for key, value in (("location", location), ("offset", str(offset)), ("length", str(length))):
        entry = tensor.external_data.add()
        entry.key, entry.value = key, value
