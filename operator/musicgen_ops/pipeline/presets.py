"""MusicGen built in code with random weights (no download): the presets tests, the demo and benchmarks use.

``tiny-random`` has the real architecture family (T5 text encoder, 32 kHz EnCodec with 4 codebooks of 2048
entries, MusicGen decoder with the delay pattern), random weights and a small Unigram tokenizer built
locally, so every code path is the one a real checkpoint takes. ``small-random`` has musicgen-small's exact
dimensions (for speed benchmarks). ``tiny-stereo-random`` is the tiny model shaped like
``facebook/musicgen-stereo-*``: 8 codebooks, the left and right channels' 4 interleaved (left on even rows),
each channel coded by the same mono EnCodec. ``tiny-random-melody`` is built by ``pipeline.melody``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from musicgen_ops.pipeline.models import (
    RANDOM_PRESETS,
    SAMPLE_RATE,
    STEREO_PRESETS,
    LoadedModel,
    set_generation_defaults,
)

if TYPE_CHECKING:
    from transformers import MusicgenForConditionalGeneration

# Words that get their own token in the tiny tokenizer; everything else falls back to characters.
_TINY_VOCAB_WORDS = (
    "a an and the with of in for on to by at from music song track beat beats bpm tempo key major minor "
    "scale style rock pop jazz blues funk soul disco house techno ambient classical piano guitar bass drums "
    "drum synth strings violin cello organ pad lead vocal choir orchestral cinematic lofi hip hop electronic "
    "acoustic electric slow fast upbeat calm happy sad dark bright warm energetic relaxing chill melody "
    "chord chords groove loop riff solo c d e f g b sharp flat tone noise burst sine square saw"
).split()


def build_tiny_tokenizer():
    """A T5 (Unigram) tokenizer with a small music vocabulary, built without any download."""
    import string

    from transformers import T5Tokenizer

    pieces: list[tuple[str, float]] = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0), ("▁", -2.0)]
    pieces += [(f"▁{word}", -5.0) for word in _TINY_VOCAB_WORDS]
    pieces += [(char, -10.0) for char in string.ascii_lowercase + string.digits + ",.-#'/:"]
    pieces += [(f"▁{char}", -9.0) for char in string.ascii_lowercase + string.digits]
    seen: set[str] = set()
    unique = [(p, s) for p, s in pieces if not (p in seen or seen.add(p))]
    return T5Tokenizer(vocab=unique, extra_ids=0, model_max_length=512)


def random_configs(preset: str):
    from transformers import EncodecConfig, MusicgenConfig, MusicgenDecoderConfig, T5Config

    # EnCodec 32 kHz exactly as in musicgen-small: hop 640 -> 50 Hz, 4 codebooks x 2048 entries.
    codec = dict(
        sampling_rate=SAMPLE_RATE,
        audio_channels=1,
        codebook_size=2048,
        target_bandwidths=[2.2],
        upsampling_ratios=[8, 5, 4, 4],
        use_causal_conv=False,
        use_conv_shortcut=False,
        normalize=False,
    )
    if preset == "tiny-random":
        text = T5Config(
            vocab_size=256,
            d_model=32,
            d_kv=8,
            d_ff=64,
            num_layers=2,
            num_heads=4,
            decoder_start_token_id=0,
            pad_token_id=0,
            eos_token_id=1,
        )
        audio = EncodecConfig(hidden_size=16, codebook_dim=16, num_filters=4, num_lstm_layers=1, **codec)
        decoder = MusicgenDecoderConfig(
            vocab_size=2048,
            hidden_size=32,
            num_hidden_layers=2,
            num_attention_heads=4,
            ffn_dim=64,
            max_position_embeddings=2048,
            num_codebooks=4,
            dropout=0.0,
            decoder_start_token_id=2048,
        )
    elif preset == "small-random":
        text = T5Config(
            vocab_size=32128,
            d_model=768,
            d_kv=64,
            d_ff=3072,
            num_layers=12,
            num_heads=12,
            decoder_start_token_id=0,
            pad_token_id=0,
            eos_token_id=1,
        )
        audio = EncodecConfig(hidden_size=128, codebook_dim=128, num_filters=64, num_lstm_layers=2, **codec)
        decoder = MusicgenDecoderConfig(
            vocab_size=2048,
            hidden_size=1024,
            num_hidden_layers=24,
            num_attention_heads=16,
            ffn_dim=4096,
            max_position_embeddings=2048,
            num_codebooks=4,
            decoder_start_token_id=2048,
        )
    elif preset in STEREO_PRESETS:
        return stereo_random_config()
    else:  # pragma: no cover - guarded by the caller
        raise ValueError(f"unknown preset {preset!r}; choose one of {', '.join(RANDOM_PRESETS)}")
    return MusicgenConfig(text_encoder=text, audio_encoder=audio, decoder=decoder)


def stereo_random_config():
    """``tiny-random`` as a stereo checkpoint: twice the codebooks, ``decoder.audio_channels=2``; the
    codec stays the mono 32 kHz EnCodec (one pass per channel), as in ``facebook/musicgen-stereo-*``."""
    from transformers import MusicgenConfig, MusicgenDecoderConfig

    mono = random_configs("tiny-random")
    decoder = MusicgenDecoderConfig(
        **{
            **mono.decoder.to_dict(),
            "num_codebooks": 2 * mono.decoder.num_codebooks,
            "audio_channels": 2,
        }
    )
    return MusicgenConfig(text_encoder=mono.text_encoder, audio_encoder=mono.audio_encoder, decoder=decoder)


def build_random_musicgen(preset: str = "tiny-random", seed: int = 0) -> LoadedModel:
    """Build a randomly initialised MusicGen and its processor in code (no download).

    Args:
        preset: ``tiny-random`` (a few hundred thousand parameters, for tests and the demo),
            ``small-random`` (musicgen-small's dimensions, for speed benchmarks) or
            ``tiny-stereo-random`` (the tiny model as a stereo checkpoint: 8 interleaved codebooks).
        seed: torch seed for the random weights; the same seed gives the same model.
    """
    import torch
    from transformers import EncodecFeatureExtractor, MusicgenForConditionalGeneration, MusicgenProcessor

    from musicgen_ops.pipeline.melody import MELODY_PRESET, build_random_melody

    if preset == MELODY_PRESET:
        return build_random_melody(seed)
    if preset not in RANDOM_PRESETS:
        raise ValueError(f"unknown preset {preset!r}; choose one of {', '.join(RANDOM_PRESETS)}")
    config = random_configs(preset)
    state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    try:
        model = MusicgenForConditionalGeneration(config)
        randomise_codebooks(model)
    finally:
        torch.random.set_rng_state(state)
    set_generation_defaults(model)
    model.eval()
    tokenizer = build_tiny_tokenizer()  # generation speed does not depend on the vocabulary's contents
    feature_extractor = EncodecFeatureExtractor(
        feature_size=int(config.decoder.audio_channels), sampling_rate=SAMPLE_RATE, padding_value=0.0
    )
    processor = MusicgenProcessor(feature_extractor=feature_extractor, tokenizer=tokenizer)
    return LoadedModel(model=model, processor=processor, name=preset)


def randomise_codebooks(model: MusicgenForConditionalGeneration) -> None:
    """Give the codec's codebooks random entries at the scale of its encoder's output.

    transformers initialises EnCodec codebooks to zeros (real checkpoints load trained ones), which would
    map every sound to code 0; random entries make codes depend on the audio, as with a trained codec.
    """
    import torch

    codec = model.audio_encoder
    with torch.no_grad():
        probe = torch.randn(1, 1, SAMPLE_RATE // 2) * 0.1
        scale = float(codec.encoder(probe).std())
        for layer in codec.quantizer.layers:
            layer.codebook.embed.normal_(std=scale)
            layer.codebook.embed_avg.copy_(layer.codebook.embed)
