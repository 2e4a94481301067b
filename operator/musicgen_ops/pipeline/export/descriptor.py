"""The JSON descriptor written beside exported parts: tensor names, shapes, dtypes and model constants.

An engine needs nothing else (no transformers config) to run the exported graphs: the descriptor names
each part's files (per precision), its inputs and outputs, and the values the generation loop uses
(pad/bos token, number of codebooks, layers and heads, frame and sample rate, generation defaults).
Shapes use strings for dynamic axes (``batch``, ``text_len``, ``length``, ``past_length``, ...).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from musicgen_ops.pipeline.errors import ExportError

DESCRIPTOR_NAME = "descriptor.json"
FORMAT_NAME = "musicgen-ops-parts"
FORMAT_VERSION = 1
#: Part names, in the order a generation uses them; also the file stems in an export folder.
PART_NAMES = ("text_encoder", "decoder_init", "decoder_step", "audio_decoder")


@dataclass(frozen=True)
class TensorSpec:
    """One graph input or output: name, element type and shape (ints, or names for dynamic axes)."""

    name: str
    dtype: str
    shape: list[int | str]

    def dynamic_axes(self) -> dict[int, str]:
        """``{axis: name}`` for every named (dynamic) axis, as ``torch.onnx.export`` wants them."""
        return {i: dim for i, dim in enumerate(self.shape) if isinstance(dim, str)}


@dataclass
class PartSpec:
    """One exported part: its files per precision (``fp32``, ``int8``) and its inputs/outputs.

    ``weights`` names, per precision, the external-data file the graph reads its weights from (shared by
    the two decoder graphs), when it has one.
    """

    files: dict[str, str]
    inputs: list[TensorSpec]
    outputs: list[TensorSpec]
    weights: dict[str, str] = field(default_factory=dict)

    @property
    def input_names(self) -> list[str]:
        return [t.name for t in self.inputs]

    @property
    def output_names(self) -> list[str]:
        return [t.name for t in self.outputs]


@dataclass
class ModelConstants:
    """The model values a generation loop needs (read from the transformers config at export time)."""

    pad_token_id: int
    bos_token_id: int
    num_codebooks: int
    vocab_size: int
    num_layers: int
    num_heads: int
    head_dim: int
    hidden_size: int
    max_positions: int
    frame_rate: int
    sample_rate: int
    audio_channels: int
    #: the model's generation_config defaults (guidance_scale, temperature, top_k, do_sample)
    generation_defaults: dict[str, Any] = field(default_factory=dict)

    @property
    def samples_per_frame(self) -> int:
        """Audio samples per codec frame (640 at 32 kHz / 50 Hz)."""
        return self.sample_rate // self.frame_rate


@dataclass
class ExportDescriptor:
    """Everything written to ``descriptor.json`` in an ``onnx/`` or ``torchscript/`` export folder."""

    runtime: str  # "onnx" or "torchscript"
    constants: ModelConstants
    parts: dict[str, PartSpec]
    opset: int | None = None
    source: dict[str, Any] = field(default_factory=dict)
    format: str = FORMAT_NAME
    format_version: int = FORMAT_VERSION

    def precisions(self) -> list[str]:
        """Precisions every part has files for (``fp32``, ``int8``)."""
        sets = [set(p.files) for p in self.parts.values()]
        return sorted(set.intersection(*sets)) if sets else []

    def save(self, folder: Path) -> Path:
        """Write ``descriptor.json`` into ``folder``."""
        path = Path(folder) / DESCRIPTOR_NAME
        path.write_text(json.dumps(asdict(self), indent=2) + "\n")
        return path

    @classmethod
    def load(cls, folder: str | Path) -> ExportDescriptor:
        """Read ``folder/descriptor.json``; :class:`ExportError` names the file and what is wrong."""
        path = Path(folder) / DESCRIPTOR_NAME
        if not path.is_file():
            raise ExportError(
                f"{path} not found: {folder} is not an export folder written by musicgen-ops export"
            )
        try:
            raw = json.loads(path.read_text())
            if raw.get("format") != FORMAT_NAME or raw.get("format_version") != FORMAT_VERSION:
                raise ExportError(
                    f"{path}: format {raw.get('format')!r} v{raw.get('format_version')} is not "
                    f"{FORMAT_NAME!r} v{FORMAT_VERSION}; re-export with this version of musicgen-ops"
                )
            parts = {
                name: PartSpec(
                    files=dict(spec["files"]),
                    inputs=[TensorSpec(**t) for t in spec["inputs"]],
                    outputs=[TensorSpec(**t) for t in spec["outputs"]],
                    weights=dict(spec.get("weights", {})),
                )
                for name, spec in raw["parts"].items()
            }
            constants = ModelConstants(**raw["constants"])
        except ExportError:
            raise
        except (KeyError, TypeError, ValueError) as err:
            raise ExportError(f"{path} is malformed: {type(err).__name__}: {err}") from err
        missing = [name for name in PART_NAMES if name not in parts]
        if missing:
            raise ExportError(f"{path} lacks the parts {', '.join(missing)}")
        return cls(
            runtime=raw["runtime"],
            constants=constants,
            parts=parts,
            opset=raw.get("opset"),
            source=raw.get("source", {}),
        )


def past_names(num_layers: int, prefix: str, kinds: tuple[str, ...] = ("self", "cross")) -> list[str]:
    """Flattened key/value tensor names ``{prefix}.{layer}.{kind}.{key|value}``, layer-major."""
    return [
        f"{prefix}.{i}.{kind}.{kv}" for i in range(num_layers) for kind in kinds for kv in ("key", "value")
    ]


def part_io(constants: ModelConstants) -> dict[str, tuple[list[TensorSpec], list[TensorSpec]]]:
    """Inputs and outputs of every part, with symbolic dynamic axes."""
    k, v, d, heads, hd = (
        constants.num_codebooks,
        constants.vocab_size,
        constants.hidden_size,
        constants.num_heads,
        constants.head_dim,
    )
    layers = constants.num_layers

    def kv(names: list[str], self_len: str) -> list[TensorSpec]:
        return [
            TensorSpec(n, "float32", ["batch", heads, self_len if ".self." in n else "text_len", hd])
            for n in names
        ]

    ids = TensorSpec("input_ids", "int64", ["batch", k, "length"])
    enc_mask = TensorSpec("encoder_attention_mask", "int64", ["batch", "text_len"])
    logits = TensorSpec("logits", "float32", ["batch", k, "length", v])
    return {
        "text_encoder": (
            [
                TensorSpec("input_ids", "int64", ["batch", "text_len"]),
                TensorSpec("attention_mask", "int64", ["batch", "text_len"]),
            ],
            [TensorSpec("encoder_hidden_states", "float32", ["batch", "text_len", d])],
        ),
        "decoder_init": (
            [ids, TensorSpec("encoder_hidden_states", "float32", ["batch", "text_len", d]), enc_mask],
            [logits, *kv(past_names(layers, "present"), "length")],
        ),
        "decoder_step": (
            [ids, enc_mask, *kv(past_names(layers, "past"), "past_length")],
            [logits, *kv(past_names(layers, "present", ("self",)), "total_length")],
        ),
        "audio_decoder": (
            [TensorSpec("codes", "int64", ["batch", k, "frames"])],
            [
                TensorSpec(
                    "audio",
                    "float32",
                    ["batch", "samples"]
                    if constants.audio_channels == 1
                    else ["batch", constants.audio_channels, "samples"],
                )
            ],
        ),
    }


def constants_from_model(model: Any) -> ModelConstants:
    """Read :class:`ModelConstants` from a ``MusicgenForConditionalGeneration``."""
    dec = model.config.decoder
    codec = model.config.audio_encoder
    gen = model.generation_config
    if int(dec.audio_channels) not in (1, 2) or int(dec.num_codebooks) % int(dec.audio_channels):
        raise ExportError(
            f"MusicGen with decoder.audio_channels={dec.audio_channels} and {dec.num_codebooks} codebooks "
            "cannot be exported: only mono and stereo (interleaved codebooks) checkpoints are supported"
        )
    defaults = {
        "guidance_scale": float(gen.guidance_scale) if gen.guidance_scale is not None else 1.0,
        "temperature": float(gen.temperature) if gen.temperature is not None else 1.0,
        "top_k": int(gen.top_k) if gen.top_k is not None else 0,
        "do_sample": bool(gen.do_sample),
    }
    return ModelConstants(
        pad_token_id=int(dec.pad_token_id),
        bos_token_id=int(
            gen.decoder_start_token_id if gen.decoder_start_token_id is not None else dec.bos_token_id
        ),
        num_codebooks=int(dec.num_codebooks),
        vocab_size=int(dec.vocab_size),
        num_layers=int(dec.num_hidden_layers),
        num_heads=int(dec.num_attention_heads),
        head_dim=int(dec.hidden_size) // int(dec.num_attention_heads),
        hidden_size=int(dec.hidden_size),
        max_positions=int(dec.max_position_embeddings),
        frame_rate=int(codec.frame_rate),
        sample_rate=int(codec.sampling_rate),
        audio_channels=int(dec.audio_channels),
        generation_defaults=defaults,
    )
