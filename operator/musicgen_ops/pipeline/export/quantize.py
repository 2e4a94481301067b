"""INT8 variants of exported ONNX parts with ONNX Runtime's dynamic quantization.

Weights of MatMul/Gemm nodes (every projection, feed-forward layer and codebook head) of the text encoder
and the two decoder graphs are stored as INT8, per output channel and with 7-bit range (``reduce_range``:
without it, x86 CPUs lacking VNNI saturate the u8 x s8 products; on the tiny test model full range gave
13-50 % logit error, reduced range 1 %), and activations are quantized on the fly. Gather tables (the
codebook and text embeddings, the position table) are stored as 8-bit with one scale per table and
dequantized after the lookup. The two INT8 decoder graphs share one weights file, as the fp32 ones do.
The EnCodec audio decoder is convolutions and an LSTM, which dynamic quantization leaves mostly float
(the file grew); its INT8 variant stores those weights as INT8 instead (symmetric, one scale per output
channel) behind ``DequantizeLinear`` nodes, and computes in float32 as before (weight-only quantization:
4x smaller, the same speed).
"""

from __future__ import annotations

import logging
from pathlib import Path

from musicgen_ops.pipeline.errors import ExportError
from musicgen_ops.pipeline.export.descriptor import PartSpec
from musicgen_ops.pipeline.export.weights import external_locations

logger = logging.getLogger(__name__)

#: Node types whose weights are quantized.
QUANTIZED_OP_TYPES = ("MatMul", "Gemm", "Gather")
#: Parts that get a dynamically quantized INT8 file.
QUANTIZED_PARTS = ("text_encoder", "decoder_init", "decoder_step")
#: Parts whose INT8 file holds INT8 weights but computes in float (see :func:`quantize_weights_only`).
WEIGHT_ONLY_PARTS = ("audio_decoder",)
#: op type -> (input index, output-channel axis) of each weight that weight-only quantization stores as INT8.
WEIGHT_ONLY_INPUTS: dict[str, tuple[tuple[int, int], ...]] = {
    "Conv": ((1, 0),),
    "ConvTranspose": ((1, 1),),
    "LSTM": ((1, 1), (2, 1)),
}


class _DropPreprocessHint(logging.Filter):
    """onnxruntime logs "consider to run pre-processing" on the root logger for every file; its shape
    inference pass (quant_pre_process) would add ~10 s per graph on 2 CPU cores."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "pre-processing before quantization" not in record.getMessage()


def quantize_onnx_file(source: Path, target: Path, op_types: tuple[str, ...] = QUANTIZED_OP_TYPES) -> Path:
    """Write a dynamically INT8-quantized copy of ``source`` to ``target`` and check it.

    A ``source`` with external data gives a ``target`` with external data (``<target>.data``).
    """
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quiet = _DropPreprocessHint()
    logging.getLogger().addFilter(quiet)
    try:
        quantize_dynamic(
            source,
            target,
            op_types_to_quantize=list(op_types),
            weight_type=QuantType.QInt8,
            per_channel=True,
            reduce_range=True,
            use_external_data_format=bool(external_locations(source)),
        )
        onnx.checker.check_model(str(target))
    except Exception as err:
        raise ExportError(f"INT8 quantization of {source} failed: {type(err).__name__}: {err}") from err
    finally:
        logging.getLogger().removeFilter(quiet)
    logger.info(
        "quantized %s: %.1f MB -> %.1f MB",
        source.name,
        source.stat().st_size / 1e6,
        target.stat().st_size / 1e6,
    )
    return target


def quantize_weights_only(source: Path, target: Path, min_elements: int = 1024) -> Path:
    """Write ``source`` with its Conv/ConvTranspose/LSTM weights stored as symmetric per-channel INT8.

    Each such float32 initializer of at least ``min_elements`` values becomes an INT8 initializer, a
    float32 scale per output channel and a ``DequantizeLinear`` node feeding the original consumer.
    """
    import numpy as np
    import onnx
    from onnx import helper, numpy_helper

    try:
        model = onnx.load(str(source))
        initializers = {t.name: t for t in model.graph.initializer}
        replaced: dict[str, str] = {}
        new_nodes = []
        for node in model.graph.node:
            for index, axis in WEIGHT_ONLY_INPUTS.get(node.op_type, ()):
                name = node.input[index] if index < len(node.input) else ""
                tensor = initializers.get(name)
                if tensor is None or tensor.data_type != onnx.TensorProto.FLOAT:
                    continue
                if name not in replaced:
                    weights = numpy_helper.to_array(tensor)
                    if weights.size < min_elements:
                        continue
                    others = tuple(i for i in range(weights.ndim) if i != axis)
                    scale = np.abs(weights).max(axis=others) / 127.0
                    scale = np.where(scale > 0, scale, 1.0).astype(np.float32)
                    shape = [1] * weights.ndim
                    shape[axis] = -1
                    quantized = np.clip(np.rint(weights / scale.reshape(shape)), -127, 127).astype(np.int8)
                    model.graph.initializer.extend(
                        [
                            numpy_helper.from_array(quantized, f"{name}_int8"),
                            numpy_helper.from_array(scale, f"{name}_scale"),
                            numpy_helper.from_array(np.zeros_like(scale, dtype=np.int8), f"{name}_zero"),
                        ]
                    )
                    new_nodes.append(
                        helper.make_node(
                            "DequantizeLinear",
                            [f"{name}_int8", f"{name}_scale", f"{name}_zero"],
                            [f"{name}_dequantized"],
                            name=f"{name}_DequantizeLinear",
                            axis=axis,
                        )
                    )
                    replaced[name] = f"{name}_dequantized"
                node.input[index] = replaced[name]
        for node in model.graph.node:  # other readers of a quantized weight (an Identity where the
            for index, name in enumerate(node.input):  # exporter shares it) read the dequantized copy
                if name in replaced:
                    node.input[index] = replaced[name]
        for name in replaced:
            model.graph.initializer.remove(initializers[name])
        nodes = new_nodes + list(model.graph.node)  # dequantization first keeps the graph sorted
        del model.graph.node[:]
        model.graph.node.extend(nodes)
        onnx.save(model, str(target))
        onnx.checker.check_model(str(target))
    except Exception as err:
        raise ExportError(f"weight-only INT8 of {source} failed: {type(err).__name__}: {err}") from err
    logger.info(
        "weight-only INT8 %s: %.1f MB -> %.1f MB (%d weights)",
        source.name,
        source.stat().st_size / 1e6,
        target.stat().st_size / 1e6,
        len(replaced),
    )
    return target


def add_int8_variants(folder: Path, specs: dict[str, PartSpec]) -> dict[str, PartSpec]:
    """Quantize each part's fp32 file into ``<part>.int8.onnx`` and record it under ``files["int8"]``."""
    from musicgen_ops.pipeline.export.onnx import store_weights

    for name, spec in specs.items():
        source = folder / spec.files["fp32"]
        target = folder / f"{name}.int8.onnx"
        if name in QUANTIZED_PARTS:
            quantize_onnx_file(source, target)
        elif name in WEIGHT_ONLY_PARTS and not external_locations(source):
            quantize_weights_only(source, target)
        else:
            spec.files["int8"] = spec.files["fp32"]
            if "fp32" in spec.weights:
                spec.weights["int8"] = spec.weights["fp32"]
            continue
        spec.files["int8"] = target.name
    store_weights(folder, specs, "int8")
    return specs
