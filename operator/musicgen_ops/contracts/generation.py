"""Generation: what a caller asks for, the sidecar of a written track, and a generate-job's result."""

from __future__ import annotations

from datetime import datetime
from typing import ClassVar, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from musicgen_ops.contracts.base import Contract

MusicalKey = Literal[
    "C", "C#", "Db", "D", "D#", "Eb", "E", "F", "F#", "Gb", "G", "G#", "Ab", "A", "A#", "Bb", "B"
]
Scale = Literal[
    "major", "minor", "dorian", "phrygian", "lydian", "mixolydian", "locrian", "pentatonic", "blues"
]
OutputFormat = Literal["wav", "flac", "mp3", "ogg", "opus"]
#: Lossy formats (MP3, OGG Vorbis, OGG Opus): written where libsndfile has them; ``bit_depth`` does not apply.
LOSSY_FORMATS: tuple[str, ...] = ("mp3", "ogg", "opus")
#: Formats that encode one sample rate only (an unset ``sample_rate`` means that one).
FIXED_RATE_FORMATS: dict[str, int] = {"opus": 48000}
#: Audio decoders turning codes into a waveform (``pipeline.inference.decoders``).
AudioDecoderName = Literal["encodec", "mbd"]
#: Output sample rates (the models generate at 32 kHz; others are resampled with soxr).
OutputSampleRate = Literal[32000, 44100, 48000]
SAMPLE_RATES: tuple[int, ...] = get_args(OutputSampleRate)
BitDepth = Literal[16, 24]
BIT_DEPTHS: tuple[int, ...] = get_args(BitDepth)
#: Loudness targets (LUFS, ITU-R BS.1770) and true-peak ceilings (dBTP) a request may ask for.
LUFS_RANGE = (-40.0, -5.0)
TRUE_PEAK_RANGE = (-9.0, 0.0)
DEFAULT_TRUE_PEAK_DBTP = -1.0

#: Longest track any request may ask for (a server may set a lower limit of its own).
MAX_DURATION_SECONDS = 300.0
#: Longest free-text prompt.
MAX_PROMPT_CHARS = 2000
#: Largest seed (seeds are unsigned 32-bit, as numpy's and audiocraft's).
MAX_SEED = 2**32 - 1
#: Longest melody reference (URI or path).
MAX_MELODY_URI_CHARS = 2048
#: Longest audio prompt URI.
MAX_AUDIO_PROMPT_URI_CHARS = 2048


class GenerationParameters(Contract):
    """One track to generate: the same fields in HTTP, the CLI, a GenerationRequest and generate-job."""

    legacy_names: ClassVar[dict[str, str]] = {"bpm": "target_bpm", "seed": "random_seed"}

    prompt: str = Field(
        min_length=1, max_length=MAX_PROMPT_CHARS, description="Text description of the music."
    )
    duration_seconds: float = Field(
        10.0, gt=0, le=MAX_DURATION_SECONDS, description="Length of the audio in seconds."
    )
    target_bpm: float | None = Field(None, ge=20, le=300, description="Tempo, folded into the prompt.")
    style: str | None = Field(None, max_length=200, description="Genre/style, e.g. 'lofi hip hop'.")
    key: MusicalKey | None = Field(None, description="Musical key, e.g. 'C', 'F#', 'Bb'.")
    scale: Scale | None = Field(None, description="Scale: major, minor, dorian, ...")
    temperature: float = Field(1.0, ge=0, le=2, description="Sampling temperature (0: greedy).")
    top_k: int = Field(250, ge=0, le=2048, description="Top-k sampling (0: off).")
    top_p: float = Field(0.0, ge=0, le=1, description="Nucleus sampling (0: off).")
    guidance_scale: float = Field(3.0, ge=0, le=20, description="Classifier-free guidance (<=1: off).")
    random_seed: int | None = Field(
        None, ge=0, le=MAX_SEED, description="Seed; chosen at random (and reported) when absent."
    )
    output_format: OutputFormat = Field(
        "wav", description="Audio container: wav, flac, mp3, ogg (Vorbis) or opus (OGG Opus, 48 kHz)."
    )
    sample_rate: OutputSampleRate | None = Field(
        None, description="Output sample rate in Hz (default: the model's, 32000)."
    )
    bit_depth: BitDepth = Field(16, description="PCM bits per sample.")
    target_lufs: float | None = Field(
        None,
        ge=LUFS_RANGE[0],
        le=LUFS_RANGE[1],
        description="Normalise integrated loudness (ITU-R BS.1770) to this, e.g. -14; default: as generated.",
    )
    true_peak_dbtp: float = Field(
        DEFAULT_TRUE_PEAK_DBTP,
        ge=TRUE_PEAK_RANGE[0],
        le=TRUE_PEAK_RANGE[1],
        description="True-peak ceiling (dBTP) when normalising loudness.",
    )
    melody_uri: str | None = Field(
        None,
        min_length=1,
        max_length=MAX_MELODY_URI_CHARS,
        description="musicgen-melody models only: audio (WAV/MP3/FLAC) whose melody (chroma) the music "
        "follows; a storage URI (s3://, az://, file://), or a local path in the CLI.",
    )
    audio_prompt_uri: str | None = Field(
        None,
        min_length=1,
        max_length=MAX_AUDIO_PROMPT_URI_CHARS,
        description="Audio clip to continue (s3://, az://, file:// or, in the CLI, a local file): the "
        "track starts with the clip (as the codec reproduces it) and lasts duration_seconds in all.",
    )
    decoder: AudioDecoderName | None = Field(
        None,
        description="Codes to audio: encodec, or mbd (MultiBand Diffusion, seeded from the request's seed); "
        "default: the server's or job's decoder.",
    )

    @field_validator("sample_rate")
    @classmethod
    def _rate_fits_the_format(cls, rate: int | None, info: ValidationInfo) -> int | None:
        output_format = info.data.get("output_format")
        fixed = FIXED_RATE_FORMATS.get(output_format or "")
        if fixed is not None and rate not in (None, fixed):
            raise ValueError(f"{output_format} encodes {fixed} Hz only; leave sample_rate unset or {fixed}")
        return rate

    @field_validator("bit_depth")
    @classmethod
    def _depth_fits_the_format(cls, depth: int, info: ValidationInfo) -> int:
        output_format = info.data.get("output_format")
        if output_format in LOSSY_FORMATS and depth != 16:
            raise ValueError(
                f"{depth} does not apply to {output_format} (lossy); bit depth is for wav and flac only, "
                "leave it at 16"
            )
        return depth


class GenerationResult(BaseModel):
    """A written track: files and how it was made (the JSON sidecar beside the audio)."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(description="Result id (also the file stem for server-side results).")
    audio_path: str
    sidecar_path: str
    spectrogram_path: str | None = None
    model_id: str = Field(description="The trained model id, or the base model used.")
    conditioning_text: str = Field(description="The text the model was conditioned on (fields folded in).")
    parameters: GenerationParameters = Field(description="The validated request parameters.")
    seed: int = Field(description="Seed actually used (reuse it to get the same audio).")
    sample_rate: int
    duration_seconds: float
    num_samples: int
    output_format: OutputFormat
    bit_depth: BitDepth = 16
    decoder: str = Field("encodec", description="Audio decoder that turned the codes into the waveform.")
    loudness_lufs: float | None = Field(None, description="Measured integrated loudness of the file.")
    true_peak_dbtp: float | None = Field(None, description="Measured true peak of the file.")
    windows: int = Field(description="generate() windows used (more than 1 beyond the model's window).")
    batch_size: int = Field(description="Requests generated together in the same forward pass.")
    wall_seconds: float = Field(description="Seconds from start of generation to files written.")
    real_time_factor: float = Field(
        description="wall_seconds / duration_seconds (below 1: faster than real time)."
    )
    audio_sha256: str
    created: datetime
    channels: int = Field(1, ge=1, description="Audio channels in the file (2 for stereo MusicGen).")


class Timings(BaseModel):
    """Seconds spent in each stage of a generation Job."""

    model_config = ConfigDict(extra="forbid")

    load_seconds: float | None = Field(None, description="Fetching and loading the model.")
    generate_seconds: float | None = Field(None, description="Generating and writing the audio.")
    total_seconds: float | None = Field(None, description="The whole Job.")


class GenerationJobResult(BaseModel):
    """The JSON a generate-job writes next to the audio (``<output>.json``); the operator reads it."""

    model_config = ConfigDict(extra="forbid")

    output_uri: str = Field(description="The audio.")
    model_id: str
    seed: int = Field(description="Seed actually used.")
    duration_seconds: float = Field(description="Length of the audio.")
    sample_rate: int
    num_samples: int
    conditioning_text: str
    audio_sha256: str
    real_time_factor: float
    timings: Timings
    channels: int = Field(1, ge=1, description="Audio channels (2 for stereo MusicGen).")
