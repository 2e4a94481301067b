"""The parts of MusicGen a generation loop needs, as small modules with plain tensor inputs and outputs.

MusicGen is autoregressive, so one graph is not enough. These wrappers split a (merged) model into:

- :class:`TextEncoderPart`: token ids + mask -> encoder hidden states (projected to the decoder width and
  zeroed at padding, exactly as ``MusicgenForConditionalGeneration.forward`` does);
- :class:`DecoderInitPart`: the first decoder step(s) without a cache; also returns the per-layer
  self-attention keys/values and the cross-attention keys/values (computed once per generation);
- :class:`DecoderStepPart`: later steps, taking the flattened past keys/values and returning the new ones;
- :class:`AudioDecoderPart`: EnCodec codes ``[batch, codebooks, frames]`` -> waveform ``[batch, samples]``
  (stereo checkpoints: ``[batch, 2, samples]``, each channel's interleaved codebooks decoded apart).

The decoder parts call the model's own projections, layer norms, embeddings and heads; only the
attention arithmetic (and the key/value cache, as explicit tensors instead of transformers' Cache objects)
is written out, so the same module traces for TorchScript and exports to ONNX.
"""

from __future__ import annotations

import torch
from torch import nn


def _additive_mask(allowed: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """Boolean "may attend" -> 0 where allowed, the dtype's minimum elsewhere."""
    zero = torch.zeros((), dtype=dtype)
    return torch.where(allowed, zero, torch.full((), torch.finfo(dtype).min, dtype=dtype))


def _attend(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, mask: torch.Tensor, scaling: float):
    """Eager scaled dot-product attention on ``[batch, heads, length, head_dim]`` tensors."""
    scores = torch.matmul(query, key.transpose(2, 3)) * scaling + mask
    return torch.matmul(torch.softmax(scores, dim=-1), value)


class _DecoderCore(nn.Module):
    """Shared math of the two decoder parts, over the modules of a merged ``MusicgenForCausalLM``."""

    def __init__(self, causal_lm: nn.Module) -> None:
        super().__init__()
        decoder = causal_lm.model.decoder
        config = causal_lm.config
        self.num_codebooks = int(config.num_codebooks)
        self.num_heads = int(config.num_attention_heads)
        self.head_dim = int(config.hidden_size) // self.num_heads
        self.scaling = self.head_dim**-0.5
        self.embed_tokens = decoder.embed_tokens
        self.register_buffer("positions", decoder.embed_positions.weights.detach().clone(), persistent=True)
        self.layers = decoder.layers
        self.layer_norm = decoder.layer_norm
        self.lm_heads = causal_lm.lm_heads

    def _heads(self, states: torch.Tensor) -> torch.Tensor:
        batch, length, _ = states.shape
        return states.view(batch, length, self.num_heads, self.head_dim).transpose(1, 2)

    def _merge_heads(self, states: torch.Tensor) -> torch.Tensor:
        batch, _, length, _ = states.shape
        return states.transpose(1, 2).reshape(batch, length, self.num_heads * self.head_dim)

    def cross_key_values(self, encoder_hidden_states: torch.Tensor) -> list[torch.Tensor]:
        """Per layer: cross-attention key, value (``[batch, heads, text_len, head_dim]``)."""
        out: list[torch.Tensor] = []
        for layer in self.layers:
            attn = layer.encoder_attn
            out += [
                self._heads(attn.k_proj(encoder_hidden_states)),
                self._heads(attn.v_proj(encoder_hidden_states)),
            ]
        return out

    def forward_core(
        self,
        input_ids: torch.Tensor,
        encoder_attention_mask: torch.Tensor,
        past_self: list[torch.Tensor] | None,
        cross: list[torch.Tensor],
    ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Run the decoder on ``input_ids [batch, codebooks, length]`` after ``past_self`` (or nothing)."""
        length = input_ids.shape[2]
        hidden = sum(self.embed_tokens[k](input_ids[:, k]) for k in range(self.num_codebooks))
        past_length = past_self[0].shape[2] if past_self else 0
        query_pos = torch.arange(length, device=input_ids.device) + past_length
        hidden = hidden + self.positions.index_select(0, query_pos).to(hidden.dtype)
        key_pos = torch.arange(length + past_length if past_self else length, device=input_ids.device)
        self_mask = _additive_mask(key_pos[None, :] <= query_pos[:, None], hidden.dtype)
        cross_mask = _additive_mask(encoder_attention_mask[:, None, None, :] > 0, hidden.dtype)
        present: list[torch.Tensor] = []
        for i, layer in enumerate(self.layers):
            residual = hidden
            states = layer.self_attn_layer_norm(hidden)
            attn = layer.self_attn
            query = self._heads(attn.q_proj(states))
            key = self._heads(attn.k_proj(states))
            value = self._heads(attn.v_proj(states))
            if past_self:
                key = torch.cat([past_self[2 * i], key], dim=2)
                value = torch.cat([past_self[2 * i + 1], value], dim=2)
            present += [key, value]
            states = attn.out_proj(self._merge_heads(_attend(query, key, value, self_mask, self.scaling)))
            hidden = residual + states

            residual = hidden
            states = layer.encoder_attn_layer_norm(hidden)
            attn = layer.encoder_attn
            query = self._heads(attn.q_proj(states))
            context = _attend(query, cross[2 * i], cross[2 * i + 1], cross_mask, self.scaling)
            hidden = residual + attn.out_proj(self._merge_heads(context))

            residual = hidden
            states = layer.activation_fn(layer.fc1(layer.final_layer_norm(hidden)))
            hidden = residual + layer.fc2(states)
        hidden = self.layer_norm(hidden)
        logits = torch.stack([head(hidden) for head in self.lm_heads], dim=1)  # [batch, K, length, vocab]
        return logits, present


class DecoderInitPart(_DecoderCore):
    """First decoder call: ``(input_ids, encoder_hidden_states, encoder_attention_mask)`` ->
    ``(logits, present.{i}.self.key/value..., present.{i}.cross.key/value...)`` (layer-major)."""

    def forward(
        self,
        input_ids: torch.Tensor,
        encoder_hidden_states: torch.Tensor,
        encoder_attention_mask: torch.Tensor,
    ) -> tuple[torch.Tensor, ...]:
        cross = self.cross_key_values(encoder_hidden_states)
        logits, present = self.forward_core(input_ids, encoder_attention_mask, None, cross)
        flat: list[torch.Tensor] = []
        for i in range(len(self.layers)):
            flat += [present[2 * i], present[2 * i + 1], cross[2 * i], cross[2 * i + 1]]
        return (logits, *flat)


class DecoderStepPart(_DecoderCore):
    """Later decoder calls: ``(input_ids, encoder_attention_mask, past.{i}.self.key/value,
    past.{i}.cross.key/value...)`` -> ``(logits, present.{i}.self.key/value...)``."""

    def forward(self, input_ids: torch.Tensor, encoder_attention_mask: torch.Tensor, *past: torch.Tensor):
        past_self = [t for i in range(len(self.layers)) for t in past[4 * i : 4 * i + 2]]
        cross = [t for i in range(len(self.layers)) for t in past[4 * i + 2 : 4 * i + 4]]
        logits, present = self.forward_core(input_ids, encoder_attention_mask, past_self, cross)
        return (logits, *present)


class TextEncoderPart(nn.Module):
    """``(input_ids, attention_mask)`` -> encoder hidden states as the decoder's cross-attention sees them."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.text_encoder = model.text_encoder
        self.proj = getattr(model, "enc_to_dec_proj", None)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        hidden = self.text_encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        if self.proj is not None:
            hidden = self.proj(hidden)
        return hidden * attention_mask[..., None].to(hidden.dtype)


class AudioDecoderPart(nn.Module):
    """EnCodec codes ``[batch, codebooks, frames]`` (int64) -> mono waveform ``[batch, samples]``, or
    ``[batch, 2, samples]`` for stereo MusicGen (left codebooks on even rows, right on odd rows)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.quantizer = model.audio_encoder.quantizer
        self.decoder = model.audio_encoder.decoder
        self.channels = int(getattr(model.config.decoder, "audio_channels", 1))

    def _mono(self, codes: torch.Tensor) -> torch.Tensor:
        embeddings = self.quantizer.decode(codes.transpose(0, 1))
        return self.decoder(embeddings)[:, 0]

    def forward(self, codes: torch.Tensor) -> torch.Tensor:
        if self.channels == 1:
            return self._mono(codes)
        return torch.stack([self._mono(codes[:, 0::2]), self._mono(codes[:, 1::2])], dim=1)


def build_parts(model: nn.Module) -> dict[str, nn.Module]:
    """Wrap a merged ``MusicgenForConditionalGeneration`` into the four parts (in eval mode)."""
    parts: dict[str, nn.Module] = {
        "text_encoder": TextEncoderPart(model),
        "decoder_init": DecoderInitPart(model.decoder),
        "decoder_step": DecoderStepPart(model.decoder),
        "audio_decoder": AudioDecoderPart(model),
    }
    for part in parts.values():
        part.eval()
    return parts
