"""ONNX weights stored once: the decoder graphs share one external file; INT8 also quantises Gathers."""

from __future__ import annotations

import numpy as np
import pytest

from musicgen_ops.pipeline.errors import ExportError


def _sizes(folder):
    return {p.name: p.stat().st_size for p in folder.iterdir()}


def test_decoder_graphs_share_one_weights_file(exported, merged_model):
    from musicgen_ops.pipeline.export.descriptor import ExportDescriptor
    from musicgen_ops.pipeline.export.weights import external_locations

    folder = exported.root / "onnx"
    descriptor = ExportDescriptor.load(folder)
    sizes = _sizes(folder)
    for precision, weights in (("fp32", "decoder.onnx.data"), ("int8", "decoder.int8.onnx.data")):
        for part in ("decoder_init", "decoder_step"):
            assert descriptor.parts[part].weights[precision] == weights
            assert external_locations(folder / descriptor.parts[part].files[precision]) == {weights}
    assert "decoder_init.int8.onnx.data" not in sizes and "decoder_step.int8.onnx.data" not in sizes
    # Stored once: the shared file is about one copy of the decoder's weights, not two.
    decoder_bytes = sum(t.numel() * t.element_size() for t in merged_model.decoder.state_dict().values())
    assert sizes["decoder.onnx.data"] < 1.3 * decoder_bytes
    assert sizes["decoder_init.onnx"] + sizes["decoder_step.onnx"] < 0.2 * sizes["decoder.onnx.data"]
    assert sizes["decoder.int8.onnx.data"] < 0.45 * sizes["decoder.onnx.data"]


def test_int8_decoder_quantises_the_embedding_tables(exported):
    import onnx

    model = onnx.load(str(exported.root / "onnx" / "decoder_step.int8.onnx"), load_external_data=False)
    tables = {i.name: i for i in model.graph.initializer}
    gathers = [n for n in model.graph.node if n.op_type == "Gather" and n.input[0] in tables]
    quantized = [
        n for n in gathers if tables[n.input[0]].data_type in (onnx.TensorProto.UINT8, onnx.TensorProto.INT8)
    ]
    # The four codebook embeddings and the position table are 8-bit, dequantised after the lookup.
    assert len(quantized) >= 5
    dequantized = {n.input[0] for n in model.graph.node if n.op_type == "DequantizeLinear"}
    assert all(n.output[0] in dequantized for n in quantized)


def test_share_replaces_per_tensor_external_files(tmp_path):
    """A > 2 GB export writes one file per tensor; sharing folds them into one file and deletes them."""
    import onnx
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    from musicgen_ops.pipeline.export.weights import external_locations, share_external_weights

    rng = np.random.default_rng(0)
    weight = rng.standard_normal((64, 32)).astype(np.float32)
    graphs = []
    for name in ("a", "b"):
        graph = helper.make_graph(
            [helper.make_node("MatMul", ["x", "w"], ["y"])],
            name,
            [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 64])],
            [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 32])],
            [numpy_helper.from_array(weight, "w")],
        )
        # IR 8: the onnxruntime in the lock reads IR <= 13, and onnx writes its newest IR by default.
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
        path = tmp_path / f"{name}.onnx"
        onnx.save_model(
            model, str(path), save_as_external_data=True, all_tensors_to_one_file=False, size_threshold=0
        )
        graphs.append(path)
    before = {p.name for p in tmp_path.iterdir()} - {"a.onnx", "b.onnx"}
    assert before  # per-tensor files exist
    share_external_weights(graphs, "shared.onnx.data")
    assert {p.name for p in tmp_path.iterdir()} == {"a.onnx", "b.onnx", "shared.onnx.data"}
    assert (tmp_path / "shared.onnx.data").stat().st_size == weight.nbytes  # once, not twice
    x = rng.standard_normal((2, 64)).astype(np.float32)
    for path in graphs:
        assert external_locations(path) == {"shared.onnx.data"}
        y = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
        np.testing.assert_allclose(y, x @ weight, rtol=1e-5)


def test_share_refuses_graphs_in_two_folders(tmp_path):
    from musicgen_ops.pipeline.export.weights import share_external_weights

    (tmp_path / "x").mkdir()
    with pytest.raises(ExportError, match="must be in one folder"):
        share_external_weights([tmp_path / "a.onnx", tmp_path / "x" / "b.onnx"], "w.data")


def test_int8_codec_stores_its_convolution_weights_as_int8(exported, onnx_engine):
    import onnx

    folder = exported.root / "onnx"
    model = onnx.load(str(folder / "audio_decoder.int8.onnx"))
    int8 = {t.name for t in model.graph.initializer if t.data_type == onnx.TensorProto.INT8}
    convs = [n for n in model.graph.node if n.op_type in ("Conv", "ConvTranspose")]
    producers = {n.output[0]: n for n in model.graph.node if n.op_type == "DequantizeLinear"}
    floats = {t.name: t for t in model.graph.initializer if t.data_type == onnx.TensorProto.FLOAT}
    assert convs and any(n.input[1] in producers for n in convs)
    for node in convs:  # every weight is INT8 behind a DequantizeLinear, but for tiny ones (< 1024 values)
        if node.input[1] in producers:
            assert producers[node.input[1]].input[0] in int8
        else:
            assert int(np.prod(floats[node.input[1]].dims)) < 1024
    fp32 = folder / "audio_decoder.onnx"
    assert (folder / "audio_decoder.int8.onnx").stat().st_size < 0.8 * fp32.stat().st_size


def test_int8_only_export_keeps_no_float32_weights(merged_model, lora_model, tmp_path):
    from musicgen_ops.pipeline.export.exporter import MusicGenExporter
    from musicgen_ops.pipeline.inference.base import SamplingParams
    from musicgen_ops.pipeline.inference.onnx_engine import ONNXInferenceEngine

    folder = tmp_path / "onnx"
    MusicGenExporter(merged_model, lora_model.processor).export_to_onnx(
        folder, quantize=True, keep_fp32=False, verify=False
    )
    onnx_files = sorted(p.name for p in folder.iterdir() if ".onnx" in p.name)
    assert onnx_files == [
        "audio_decoder.int8.onnx",
        "decoder.int8.onnx.data",
        "decoder_init.int8.onnx",
        "decoder_step.int8.onnx",
        "text_encoder.int8.onnx",
    ]
    engine = ONNXInferenceEngine(folder)
    assert engine.precision == "int8"
    out = engine.generate(["calm"], num_frames=4, sampling=SamplingParams(do_sample=False))
    assert out.audio.shape == (1, 4 * 640) and np.isfinite(out.audio).all()
