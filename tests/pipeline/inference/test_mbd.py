"""MultiBand Diffusion decoder: shapes, exact lengths, seeded determinism, the published checkpoint layout.

Runs on the tiny random MusicGen's 32 kHz EnCodec with tiny random MBD bands and 2 diffusion steps
(the published decoder takes 20; the step count only changes how often the same network runs).
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from musicgen_ops.pipeline.errors import ModelNotAvailableError
from musicgen_ops.pipeline.inference.decoders.mbd import MultiBandDiffusionDecoder, mbd_decoder_factory
from musicgen_ops.pipeline.inference.decoders.mbd_checkpoint import (
    MBD_MUSICGEN_FILENAME,
    MbdWeightsError,
    build_random_bands,
    load_mbd_checkpoint,
    save_mbd_checkpoint,
)
from musicgen_ops.pipeline.inference.decoders.mbd_schedule import step_list
from musicgen_ops.pipeline.inference.decoders.mbd_unet import DiffusionUnet, UnetConfig

HOP = 640  # 32 kHz EnCodec: 50 frames per second
STEPS = 2


@pytest.fixture(scope="module")
def musicgen():
    from musicgen_ops.pipeline.presets import build_random_musicgen

    return build_random_musicgen("tiny-random").model


@pytest.fixture(scope="module")
def decoder(musicgen) -> MultiBandDiffusionDecoder:
    return MultiBandDiffusionDecoder.from_musicgen(musicgen, "tiny-random", sampling_steps=STEPS, eq_bands=8)


def random_codes(batch: int, frames: int, seed: int = 0) -> torch.Tensor:
    return torch.randint(0, 2048, (batch, 4, frames), generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("frames", [1, 7])
def test_decode_gives_batch_channels_and_exactly_frames_times_hop_samples(decoder, frames):
    audio = decoder.decode(random_codes(2, frames), seeds=[3, 4])
    assert audio.shape == (2, 1, frames * HOP)
    assert audio.dtype == torch.float32
    assert torch.isfinite(audio).all()
    assert audio.abs().max() > 0
    assert (decoder.name, decoder.sample_rate, decoder.channels) == ("mbd", 32_000, 1)


def test_same_seed_same_audio_other_seed_other_audio(decoder):
    codes = random_codes(1, 5)
    first = decoder.decode(codes, seeds=11)
    assert torch.equal(first, decoder.decode(codes, seeds=11))
    other = decoder.decode(codes, seeds=12)
    assert (first - other).abs().max() > 1e-4


def test_an_item_decodes_the_same_alone_or_in_a_batch(decoder):
    codes = random_codes(3, 4, seed=5)
    batch = decoder.decode(codes, seeds=[7, 8, 9])
    alone = decoder.decode(codes[1:2], seeds=[8])
    torch.testing.assert_close(batch[1:2], alone, atol=1e-5, rtol=1e-4)


def test_the_audio_follows_the_codes(decoder):
    first = decoder.decode(random_codes(1, 5, seed=1), seeds=0)
    second = decoder.decode(random_codes(1, 5, seed=2), seeds=0)
    assert (first - second).abs().max() > 1e-4


def test_equaliser_matches_band_levels_to_the_encodec_decoding(musicgen):
    plain = MultiBandDiffusionDecoder.from_musicgen(musicgen, "tiny-random", sampling_steps=STEPS, eq_bands=0)
    codes = random_codes(1, 10)
    raw = plain.decode(codes, seeds=1)
    assert not raw.requires_grad
    reference = plain._encodec_reference(codes, raw.shape[-1])
    equalised = plain.equalise(raw, reference, n_bands=16)
    assert equalised.shape == raw.shape
    # Broadband level moves from the diffusion output's to the reference's.
    assert abs(float(equalised.std() / reference.std()) - 1) < abs(float(raw.std() / reference.std()) - 1)


def test_wrong_codes_shape_or_seed_count_is_refused(decoder):
    with pytest.raises(ValueError, match="codes must be"):
        decoder.decode(torch.zeros(1, 3, 5, dtype=torch.long))
    with pytest.raises(ValueError, match="2 seeds for a batch of 1"):
        decoder.decode(random_codes(1, 2), seeds=[1, 2])


def test_published_step_list_is_every_fiftieth_state_then_zero():
    assert step_list(1000, 20) == list(range(1000))[::-50] + [0]
    assert step_list(1000, 2) == [999, 499, 0]
    with pytest.raises(ValueError, match="sampling steps"):
        step_list(1000, 0)


def test_checkpoint_round_trip_uses_the_published_key_names(musicgen, decoder, tmp_path):
    path = save_mbd_checkpoint(tmp_path / MBD_MUSICGEN_FILENAME, decoder.bands, sample_rate=32_000)
    raw = torch.load(path, map_location="cpu", weights_only=False)
    assert {"sample_rate", "n_bands"} <= set(raw) and raw["n_bands"] == 4
    assert set(raw[0]) == {"cfg", "model_state", "processor_state"}
    assert type(raw[0]["cfg"]).__name__ == "DictConfig"
    assert raw[3]["cfg"].processor.power_std == 0.75 and raw[3]["cfg"].schedule.beta_exp == 7.5
    model_keys = set(raw[0]["model_state"])
    for key in (
        "embedding.weight",
        "embeddings.0.weight",
        "encoders.0.conv.weight",
        "encoders.0.norm.weight",
        "encoders.0.res_blocks.0.conv1.weight",
        "decoders.0.convtr.weight",
        "conv_codec.weight",
        "transformer.layers.5.self_attn.mha.in_proj_weight",
        "transformer.layers.0.linear1.weight",
        "transformer.layers.0.norm2.bias",
    ):
        assert key in model_keys, key
    assert raw[0]["processor_state"] == {}  # bands 0 and 1 have no equaliser
    assert set(raw[2]["processor_state"]) == {
        "counts",
        "sum_x",
        "sum_x2",
        "sum_target_x2",
        "split_bands.lowpass.filters",
    }

    # From the folder, as a hub snapshot would hold it: same audio for the same seed.
    loaded = MultiBandDiffusionDecoder.from_musicgen(musicgen, tmp_path, sampling_steps=STEPS, eq_bands=8)
    codes = random_codes(1, 3)
    torch.testing.assert_close(loaded.decode(codes, seeds=5), decoder.decode(codes, seeds=5))


def test_state_dicts_without_the_mha_prefix_load_too(decoder):
    band = decoder.bands[0]
    state = {k.replace(".mha.", "."): v for k, v in band.model.state_dict().items()}
    assert any(".self_attn.in_proj_weight" in key for key in state)
    clone = DiffusionUnet(1, band.schedule.num_steps, band.model.config)
    clone.load_published_state(state)
    for key, value in band.model.state_dict().items():
        assert torch.equal(clone.state_dict()[key], value)


@pytest.fixture
def saved(tmp_path):
    bands = build_random_bands(codec_dim=16)
    return save_mbd_checkpoint(tmp_path / MBD_MUSICGEN_FILENAME, bands, sample_rate=32_000)


def _resave(path, change) -> None:
    checkpoint = torch.load(path, map_location="cpu", weights_only=False)
    change(checkpoint)
    torch.save(checkpoint, path)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda c: c.pop("n_bands"), "missing key 'n_bands'"),
        (lambda c: c[1].pop("model_state"), "band 1 lacks model_state"),
        (
            lambda c: c[2]["model_state"].pop("conv_codec.weight"),
            r"band 2: .*missing 1 key\(s\): conv_codec.weight",
        ),
        (lambda c: c[3]["processor_state"].pop("sum_x2"), "band 3: .*processor_state: missing .*sum_x2"),
        (lambda c: c[0]["cfg"].pop("diffusion_unet"), "band 0: .*cfg lacks 'diffusion_unet'"),
        (lambda c: c.update(sample_rate=24_000), "24000 Hz but the model's codec runs at 32000 Hz"),
    ],
)
def test_checkpoints_with_missing_keys_are_refused_naming_the_key(musicgen, saved, change, message):
    _resave(saved, change)
    with pytest.raises(MbdWeightsError, match=message) as caught:
        MultiBandDiffusionDecoder.from_musicgen(musicgen, saved)
    assert str(caught.value).startswith(f"error: {saved}")


def test_training_config_sections_decoding_does_not_need_are_left_unresolved(musicgen, saved):
    def add_training_only_keys(checkpoint):
        for index in range(4):
            checkpoint[index]["cfg"]["dora"] = {"dir": "${hydra:runtime.output_dir}/xps"}
            checkpoint[index]["cfg"]["device"] = "${missing_device}"

    _resave(saved, add_training_only_keys)
    decoder = MultiBandDiffusionDecoder.from_musicgen(musicgen, saved, sampling_steps=STEPS)
    assert len(decoder.bands) == 4


def test_checkpoints_holding_code_objects_are_refused(musicgen, saved):
    _resave(saved, lambda c: c.update(extra=SimpleNamespace(run="anything")))
    with pytest.raises(MbdWeightsError, match="not a readable MBD checkpoint"):
        load_mbd_checkpoint(saved)


def test_unavailable_weights_say_how_to_get_them(musicgen, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelNotAvailableError, match="`hf download facebook/multiband-diffusion"):
        mbd_decoder_factory(model=musicgen, weights="facebook/multiband-diffusion")
    with pytest.raises(MbdWeightsError, match=f"holds no {MBD_MUSICGEN_FILENAME}"):
        mbd_decoder_factory(model=musicgen, weights=tmp_path)


def test_factory_needs_a_mono_musicgen(musicgen):
    with pytest.raises(ValueError, match="needs the loaded MusicGen"):
        mbd_decoder_factory(model=None, weights="tiny-random")
    stereo = SimpleNamespace(
        config=SimpleNamespace(decoder=SimpleNamespace(audio_channels=2, num_codebooks=8))
    )
    with pytest.raises(ValueError, match="mono MusicGen only"):
        mbd_decoder_factory(model=stereo, weights="tiny-random")


@pytest.mark.parametrize(
    "variant",
    [dict(bilstm=True), dict(transformer=True, cross_attention=True), dict()],
    ids=["bilstm", "cross-attention", "no-bottleneck"],
)
def test_every_bottleneck_of_the_unet_keeps_the_shape(variant):
    config = UnetConfig(hidden=8, depth=2, growth=2.0, codec_dim=16, **variant)
    unet = DiffusionUnet(1, 1000, config).eval()
    with torch.no_grad():
        out = unet(torch.randn(2, 1, 1000), 500, condition=torch.randn(2, 16, 2))
    assert out.shape == (2, 1, 1000)


def test_unknown_unet_keys_are_refused():
    with pytest.raises(ValueError, match="diffusion_unet: unknown key"):
        UnetConfig.from_dict({"hidden": 8, "wings": 2})


def test_the_condition_reaches_the_output_through_the_deepest_skip_even_without_a_bottleneck():
    # audiocraft adds the codec latent to the bottleneck in place, so the deepest skip carries it: with
    # no transformer or LSTM (bottleneck zeroed) the output still depends on the condition.
    unet = DiffusionUnet(1, 1000, UnetConfig(hidden=8, depth=2, growth=2.0, codec_dim=16)).eval()
    x = torch.randn(1, 1, 1000)
    with torch.no_grad():
        first = unet(x, 10, condition=torch.zeros(1, 16, 2))
        second = unet(x, 10, condition=torch.ones(1, 16, 2))
    assert (first - second).abs().max() > 1e-4


def test_a_half_precision_codec_still_gives_float32_audio(fresh_tiny_model):
    model = fresh_tiny_model.model
    model.audio_encoder.to(torch.bfloat16)
    decoder = MultiBandDiffusionDecoder.from_musicgen(model, "tiny-random", sampling_steps=STEPS, eq_bands=8)
    audio = decoder.decode(random_codes(1, 3), seeds=1)
    assert audio.dtype == torch.float32 and audio.shape == (1, 1, 3 * HOP)
    assert torch.isfinite(audio).all()
