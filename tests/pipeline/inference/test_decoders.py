"""The audio decoder seam: protocol, registry, EnCodec parity and engines decoding through it."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from musicgen_ops.pipeline.inference.base import SamplingParams
from musicgen_ops.pipeline.inference.decoders import (
    AudioDecoder,
    EncodecDecoder,
    ExportedEncodecDecoder,
    available_decoders,
    build_decoder,
    register_decoder,
)


def _codes(batch=2, frames=7, seed=0):
    return torch.randint(0, 2048, (batch, 4, frames), generator=torch.Generator().manual_seed(seed))


class RecordingDecoder:
    """A decoder wrapping EnCodec that records each call (proves engines go through the seam)."""

    name = "recording"

    def __init__(self, inner: AudioDecoder) -> None:
        self.inner = inner
        self.sample_rate = inner.sample_rate
        self.channels = inner.channels
        self.calls: list[tuple[int, ...]] = []

    def decode(self, codes):
        self.calls.append(tuple(codes.shape))
        return self.inner.decode(codes) * 0.5


def test_encodec_decoder_matches_transformers_codec(tiny_model):
    decoder = build_decoder("encodec", model=tiny_model.model)
    assert isinstance(decoder, AudioDecoder) and isinstance(decoder, EncodecDecoder)
    assert (decoder.name, decoder.sample_rate, decoder.channels) == ("encodec", 32_000, 1)
    codes = _codes()
    audio = decoder.decode(codes)
    with torch.inference_mode():
        want = tiny_model.model.audio_encoder.decode(codes[None], [None]).audio_values
    assert audio.dtype == torch.float32 and audio.shape == (2, 1, 7 * 640)
    torch.testing.assert_close(audio, want, rtol=0, atol=0)


def test_encodec_decoder_refuses_bad_codes(tiny_model):
    decoder = build_decoder("encodec", model=tiny_model.model)
    with pytest.raises(ValueError, match=r"\(batch, num_codebooks, frames\)"):
        decoder.decode(torch.zeros(4, 7, dtype=torch.long))
    with pytest.raises(ValueError, match="3 codebooks, this decoder expects 4"):
        decoder.decode(torch.zeros(1, 3, 7, dtype=torch.long))


def test_exported_decoder_converts_between_torch_and_numpy():
    seen = {}

    def run(codes: np.ndarray) -> np.ndarray:
        seen["dtype"] = codes.dtype
        return np.ones((codes.shape[0], codes.shape[2] * 640), dtype=np.float64)

    decoder = ExportedEncodecDecoder(run, sample_rate=32_000, num_codebooks=4, runtime="onnx")
    audio = decoder.decode(_codes(batch=3, frames=5))
    assert seen["dtype"] == np.int64 and decoder.name == "encodec-onnx"
    assert audio.dtype == torch.float32 and audio.shape == (3, 1, 5 * 640)


def test_registry_builds_by_name_and_names_the_choices(tiny_model):
    assert "encodec" in available_decoders()
    with pytest.raises(ValueError, match="unknown audio decoder 'nope'; choose one of .*encodec"):
        build_decoder("nope")
    with pytest.raises(ValueError, match="needs the loaded MusicGen model"):
        build_decoder("encodec")
    register_decoder(
        "test-recording", lambda *, model, device: RecordingDecoder(EncodecDecoder.from_musicgen(model))
    )
    try:
        built = build_decoder("test-recording", model=tiny_model.model)
        assert isinstance(built, RecordingDecoder)
        register_decoder("test-broken", lambda **_: object())
        with pytest.raises(TypeError, match="not an AudioDecoder"):
            build_decoder("test-broken", model=tiny_model.model)
    finally:
        from musicgen_ops.pipeline.inference import decoders

        decoders._FACTORIES.pop("test-recording", None)
        decoders._FACTORIES.pop("test-broken", None)


@pytest.mark.parametrize("engine_name", ["torch", "fast"])
def test_engines_decode_through_the_seam(tiny_model, engine_name):
    from musicgen_ops.pipeline.inference.fast_engine import FastGenerationEngine
    from musicgen_ops.pipeline.inference.torch_engine import TorchEngine

    cls = TorchEngine if engine_name == "torch" else FastGenerationEngine
    plain = cls(tiny_model)
    recording = RecordingDecoder(EncodecDecoder.from_musicgen(tiny_model.model))
    routed = cls(tiny_model, decoder=recording)
    params = SamplingParams(do_sample=False)
    want = plain.generate(["lofi"], num_frames=5, sampling=params)
    have = routed.generate(["lofi"], num_frames=5, sampling=params)
    assert recording.calls == [(1, 4, 5)]
    np.testing.assert_array_equal(have.codes, want.codes)
    np.testing.assert_allclose(have.audio, want.audio * 0.5, rtol=0, atol=1e-7)
    # The codes the engine hands over decode to exactly the audio it returns.
    direct = EncodecDecoder.from_musicgen(tiny_model.model).decode(torch.from_numpy(want.codes))
    np.testing.assert_array_equal(want.audio, direct[:, 0].numpy())


def test_torch_engine_codec_tap_leaves_other_callers_alone(tiny_model):
    from musicgen_ops.pipeline.inference.torch_engine import TorchEngine

    TorchEngine(tiny_model)
    codes = _codes(batch=1, frames=3)
    with torch.inference_mode():
        out = tiny_model.model.audio_encoder.decode(codes[None], [None]).audio_values
    assert out.shape == (1, 1, 3 * 640)  # outside generate() the real codec runs


def test_models_with_a_codes_tap_can_still_be_copied(fresh_tiny_model):
    import copy

    from musicgen_ops.pipeline.inference.torch_engine import TorchEngine

    TorchEngine(fresh_tiny_model)
    twin = copy.deepcopy(fresh_tiny_model.model)
    codes = _codes(batch=1, frames=3)
    with torch.inference_mode():
        a = fresh_tiny_model.model.audio_encoder.decode(codes[None], [None]).audio_values
        b = twin.audio_encoder.decode(codes[None], [None]).audio_values
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert twin.audio_encoder.decode.decode.__self__ is twin.audio_encoder


def test_open_engine_takes_a_decoder_name():
    from musicgen_ops.pipeline.inference.loader import open_engine

    with pytest.raises(ValueError, match="unknown audio decoder 'mbd-typo'"):
        open_engine("tiny-random", engine="torch", decoder="mbd-typo")
    engine = open_engine("tiny-random", engine="torch", decoder="encodec")
    assert isinstance(engine.decoder, EncodecDecoder)
