"""INT8 variants of exported ONNX parts with ONNX Runtime's dynamic quantization.

Weights of MatMul/Gemm nodes (every projection, feed-forward layer and codebook head) of the text encoder
and the two decoder graphs are stored as INT8, per output channel and with 7-bit range (``reduce_range``:
without it, x86 CPUs lacking VNNI saturate the u8 x s8 products; on the tiny test model full range gave
13-50 % logit error, reduced range 1 %), and activations are quantized on the fly. Gather tables (the
codebook and text embeddings, the position table) are stored as 8-bit with one scale per table and
dequantized after the lookup. The two INT8 decoder graphs share one weights file, as the fp32 ones do.
The EnCodec audio decoder is convolutions and an LSTM, which dynamic quantization leaves mostly float
(the file grew): its INT8 variant is the float32 file itself.
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
#: Parts that get an INT8 file; the others reuse their float32 file as their ``int8`` variant.
QUANTIZED_PARTS = ("text_encoder", "decoder_init", "decoder_step")


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


def add_int8_variants(folder: Path, specs: dict[str, PartSpec]) -> dict[str, PartSpec]:
    """Quantize each part's fp32 file into ``<part>.int8.onnx`` and record it under ``files["int8"]``."""
    from musicgen_ops.pipeline.export.onnx import store_weights

    for name, spec in specs.items():
        if name not in QUANTIZED_PARTS:
            spec.files["int8"] = spec.files["fp32"]
            if "fp32" in spec.weights:
                spec.weights["int8"] = spec.weights["fp32"]
            continue
        source = folder / spec.files["fp32"]
        target = folder / f"{name}.int8.onnx"
        quantize_onnx_file(source, target)
        spec.files["int8"] = target.name
    store_weights(folder, specs, "int8")
    return specs
