"""MusicGen's decoder as one fixed-shape step over a preallocated KV cache, in plain torch ops.

The fast engine (``fast_engine.py``) replays :func:`decode_step` once per generated token, eagerly on
CPU or as a captured CUDA graph on a GPU. Everything a step needs lives in preallocated tensors
(:class:`StepBuffers`): the step reads the token and position from device buffers, writes the new key
and value at that position, samples the next token on the device, applies the delay pattern and
advances the position itself, so the host never waits for the device between steps.

The math follows ``transformers.models.musicgen.modeling_musicgen`` exactly: embeddings summed over
codebooks (no embedding scale), sinusoidal positions (``MusicgenSinusoidalPositionalEmbedding``),
pre-LN self-attention, cross-attention over the text encoder's states, a GELU FFN, a final layer norm
and one LM head per codebook; classifier-free guidance is ``uncond + (cond - uncond) * scale`` on
float32 logits, as ``ClassifierFreeGuidanceLogitsProcessor`` computes it.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

#: Attention implementations :func:`decode_step` can use.
ATTENTION_IMPLS = ("sdpa", "math")


@dataclass
class LayerWeights:
    """One decoder layer's weights (q/k/v fused into one matrix; MusicGen's projections have no bias)."""

    self_ln_w: torch.Tensor
    self_ln_b: torch.Tensor
    qkv_w: torch.Tensor  # [3 * hidden, hidden]
    self_out_w: torch.Tensor
    cross_ln_w: torch.Tensor
    cross_ln_b: torch.Tensor
    cross_q_w: torch.Tensor
    cross_k_w: torch.Tensor
    cross_v_w: torch.Tensor
    cross_out_w: torch.Tensor
    ffn_ln_w: torch.Tensor
    ffn_ln_b: torch.Tensor
    fc1_w: torch.Tensor
    fc2_w: torch.Tensor
    eps: float


@dataclass
class DecoderWeights:
    """The decoder's weights, on the engine's device and in its dtype, plus the shapes they imply."""

    layers: list[LayerWeights]
    embed: torch.Tensor  # [num_codebooks * (vocab + 1), hidden], codebook k's table at rows k*(vocab+1)...
    heads: torch.Tensor  # [num_codebooks * vocab, hidden]
    final_ln_w: torch.Tensor
    final_ln_b: torch.Tensor
    final_eps: float
    activation: torch.nn.Module
    num_heads: int
    num_codebooks: int
    vocab_size: int
    pad_token_id: int
    start_token_id: int
    audio_channels: int = 1  # 2: stereo, codebook pairs (left, right) share one delay

    @property
    def hidden(self) -> int:
        """Decoder width."""
        return int(self.final_ln_w.shape[0])

    @property
    def head_dim(self) -> int:
        """Width of one attention head."""
        return self.hidden // self.num_heads

    @classmethod
    def from_model(cls, model, device: torch.device, dtype: torch.dtype) -> DecoderWeights:
        """Copy (or share, when device and dtype already match) a ``MusicgenForConditionalGeneration``'s
        decoder weights; the model's own modules are left untouched."""
        from transformers.activations import ACT2FN

        config = model.config.decoder
        decoder = model.decoder.model.decoder

        def conv(t: torch.Tensor) -> torch.Tensor:
            return t.detach().to(device=device, dtype=dtype)

        layers = []
        for layer in decoder.layers:
            attn, cross = layer.self_attn, layer.encoder_attn
            for proj in (attn.q_proj, attn.k_proj, attn.v_proj, cross.q_proj, layer.fc1, layer.fc2):
                if proj.bias is not None:  # pragma: no cover - every MusicGen checkpoint has bias=False
                    raise ValueError("MusicGen decoder projections are expected to have no bias")
            qkv = torch.cat([attn.q_proj.weight, attn.k_proj.weight, attn.v_proj.weight], dim=0)
            layers.append(
                LayerWeights(
                    self_ln_w=conv(layer.self_attn_layer_norm.weight),
                    self_ln_b=conv(layer.self_attn_layer_norm.bias),
                    qkv_w=conv(qkv),
                    self_out_w=conv(attn.out_proj.weight),
                    cross_ln_w=conv(layer.encoder_attn_layer_norm.weight),
                    cross_ln_b=conv(layer.encoder_attn_layer_norm.bias),
                    cross_q_w=conv(cross.q_proj.weight),
                    cross_k_w=conv(cross.k_proj.weight),
                    cross_v_w=conv(cross.v_proj.weight),
                    cross_out_w=conv(cross.out_proj.weight),
                    ffn_ln_w=conv(layer.final_layer_norm.weight),
                    ffn_ln_b=conv(layer.final_layer_norm.bias),
                    fc1_w=conv(layer.fc1.weight),
                    fc2_w=conv(layer.fc2.weight),
                    eps=float(layer.self_attn_layer_norm.eps),
                )
            )
        embed = torch.cat([table.weight for table in decoder.embed_tokens], dim=0)
        heads = torch.cat([head.weight for head in model.decoder.lm_heads], dim=0)
        return cls(
            layers=layers,
            embed=conv(embed),
            heads=conv(heads),
            final_ln_w=conv(decoder.layer_norm.weight),
            final_ln_b=conv(decoder.layer_norm.bias),
            final_eps=float(decoder.layer_norm.eps),
            activation=ACT2FN[config.activation_function],
            num_heads=int(config.num_attention_heads),
            num_codebooks=int(config.num_codebooks),
            vocab_size=int(config.vocab_size),
            pad_token_id=int(config.pad_token_id),
            start_token_id=int(config.decoder_start_token_id or config.bos_token_id),
            audio_channels=int(getattr(config, "audio_channels", 1)),
        )


def sinusoidal_positions(num_positions: int, dim: int) -> torch.Tensor:
    """MusicGen's position table (``MusicgenSinusoidalPositionalEmbedding.get_embedding``), float32."""
    from transformers.models.musicgen.modeling_musicgen import MusicgenSinusoidalPositionalEmbedding

    return MusicgenSinusoidalPositionalEmbedding.get_embedding(num_positions, dim).float()


@dataclass
class StepBuffers:
    """Every tensor one decode step reads or writes, for one batch bucket (``batch`` conditional rows).

    The self-attention caches are ``[2 * batch, heads, max_len, head_dim]`` (conditional rows first,
    then unconditional, as Hugging Face stacks them for guidance), a layer's keys and values stacked in
    one tensor so a step writes both with one copy; cross-attention keys/values are
    ``[2 * batch, heads, max_text, head_dim]``. Scalar sampling settings are 0-d tensors so one
    captured graph serves every request.
    """

    batch: int
    tokens: torch.Tensor  # [batch, K] long: the input tokens of the next step
    position: torch.Tensor  # [1] long: the next step's position (also the delayed-code index it writes)
    codes: torch.Tensor  # [batch, K, max_len] long: delayed codes written so far
    forced: torch.Tensor  # [batch, K, max_len] long: a code prefix's delayed codes, -1 where steps choose
    self_kv: list[torch.Tensor]  # per layer [2, 2 * batch, heads, max_len, head_dim]: keys, then values
    self_k: list[torch.Tensor]  # self_kv[i][0]
    self_v: list[torch.Tensor]  # self_kv[i][1]
    cross_k: list[torch.Tensor]
    cross_v: list[torch.Tensor]
    cross_mask: torch.Tensor  # [2 * batch, 1, 1, max_text] additive mask in the compute dtype
    noise: torch.Tensor  # [batch, noise_window, K, vocab] float32 Exp(1) draws
    positions_table: torch.Tensor  # [max_len, hidden] compute dtype
    slots: torch.Tensor  # [max_len] long: 0..max_len-1 (self-attention mask source)
    codebook_index: torch.Tensor  # [K] long
    codebook_delay: torch.Tensor  # [K] long: steps codebook k is delayed by (k mono, k // 2 stereo)
    num_frames: torch.Tensor  # 0-d long
    guidance: torch.Tensor  # 0-d float32
    use_guidance: torch.Tensor  # 0-d bool
    do_sample: torch.Tensor  # 0-d bool
    temperature: torch.Tensor  # 0-d float32
    top_k_index: torch.Tensor  # [1] long: top_k - 1
    top_p: torch.Tensor  # 0-d float32; > 1 disables nucleus filtering

    @property
    def noise_window(self) -> int:
        """Steps covered by one refill of :attr:`noise`."""
        return int(self.noise.shape[1])


def _attend(
    query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, mask: torch.Tensor, impl: str
) -> torch.Tensor:
    """Scaled dot-product attention of one query position; ``mask`` is additive."""
    scale = query.shape[-1] ** -0.5
    if impl == "sdpa":
        return F.scaled_dot_product_attention(query, key, value, attn_mask=mask, scale=scale)
    scores = torch.matmul(query, key.transpose(-1, -2)).float() * scale + mask.float()  # no fp16 overflow
    return torch.matmul(scores.softmax(dim=-1).to(value.dtype), value)


def decoder_logits(
    w: DecoderWeights, buf: StepBuffers, window: int, text_window: int, impl: str = "sdpa"
) -> torch.Tensor:
    """One decoder forward for the tokens in ``buf.tokens`` at ``buf.position``; float32 logits
    ``[2 * batch, K, vocab]``. Writes this position's keys and values into the self-attention cache.

    Args:
        window: cache slots attended to (``> position``); slots beyond it are never read.
        text_window: text positions attended to (the prompt bucket).
    """
    batch, k_books = buf.tokens.shape
    hidden, heads, head_dim = w.hidden, w.num_heads, w.head_dim
    rows = 2 * batch
    offsets = buf.codebook_index * (w.vocab_size + 1)
    x = F.embedding(buf.tokens + offsets, w.embed).sum(dim=1)  # [batch, hidden]
    x = x.repeat(2, 1) + buf.positions_table.index_select(0, buf.position)  # [rows, hidden]
    neg = torch.finfo(x.dtype).min / 2  # half: adding a score can never overflow to -inf (fp16)
    visible = buf.slots[:window] <= buf.position
    self_mask = torch.full((window,), neg, dtype=x.dtype, device=x.device).masked_fill(visible, 0.0)
    self_mask = self_mask.view(1, 1, 1, window)
    cross_mask = buf.cross_mask[..., :text_window]
    # Residual adds are fused into the output GEMMs (addmm): fewer kernels per step.
    for i, layer in enumerate(w.layers):
        h = F.layer_norm(x, (hidden,), layer.self_ln_w, layer.self_ln_b, layer.eps)
        qkv = F.linear(h, layer.qkv_w).view(rows, 3, heads, 1, head_dim)
        q = qkv[:, 0]  # [rows, heads, 1, head_dim]
        kv = buf.self_kv[i]  # not self_k/self_v: views of it would reach torch.compile as aliased inputs
        kv.index_copy_(3, buf.position, qkv[:, 1:].transpose(0, 1))  # keys and values in one copy
        a = _attend(q, kv[0, :, :, :window], kv[1, :, :, :window], self_mask, impl)
        x = torch.addmm(x, a.reshape(rows, hidden), layer.self_out_w.t())

        h = F.layer_norm(x, (hidden,), layer.cross_ln_w, layer.cross_ln_b, layer.eps)
        q = F.linear(h, layer.cross_q_w).view(rows, heads, 1, head_dim)
        ck, cv = buf.cross_k[i][:, :, :text_window], buf.cross_v[i][:, :, :text_window]
        a = _attend(q, ck, cv, cross_mask, impl)
        x = torch.addmm(x, a.reshape(rows, hidden), layer.cross_out_w.t())

        h = F.layer_norm(x, (hidden,), layer.ffn_ln_w, layer.ffn_ln_b, layer.eps)
        x = torch.addmm(x, w.activation(F.linear(h, layer.fc1_w)), layer.fc2_w.t())
    x = F.layer_norm(x, (hidden,), w.final_ln_w, w.final_ln_b, w.final_eps)
    return F.linear(x, w.heads).view(rows, k_books, w.vocab_size).float()


def choose_tokens(logits: torch.Tensor, buf: StepBuffers, candidates: int | None = None) -> torch.Tensor:
    """Guidance, then greedy or temperature/top-k/top-p sampling, all on the device: ``[batch, K]``.

    Sampling uses the exponential race (``argmax(p / E)`` with ``E ~ Exp(1)``), which draws from ``p``
    exactly like ``torch.multinomial``, with noise prepared per prompt by a seeded generator.

    ``candidates``: when given (and below the vocabulary), only the ``candidates`` largest scores are
    ranked (``torch.topk``, a fixed shape) instead of sorting the whole vocabulary; exact as long as
    ``top_k <= candidates`` (the caller's rule): every token outside the top k is filtered anyway, so
    the k-th score and the nucleus over the kept tokens are the same.
    """
    batch = buf.batch
    cond, uncond = logits[:batch], logits[batch:]
    scores = torch.where(buf.use_guidance, uncond + (cond - uncond) * buf.guidance, cond)
    greedy = scores.argmax(dim=-1)

    scaled = scores / buf.temperature
    if candidates is not None and candidates < scaled.shape[-1]:
        ordered = scaled.topk(candidates, dim=-1).values  # sorted, largest first
    else:
        ordered = scaled.sort(dim=-1, descending=True).values
    kth = ordered.index_select(-1, buf.top_k_index)  # [batch, K, 1]
    ordered = ordered.masked_fill(ordered < kth, float("-inf"))
    probs = ordered.softmax(dim=-1)
    mass_before = probs.cumsum(dim=-1) - probs
    kept = (mass_before < buf.top_p).sum(dim=-1, keepdim=True).clamp_min(1)
    nucleus = ordered.gather(-1, kept - 1)
    threshold = torch.maximum(kth, nucleus)
    filtered = scaled.masked_fill(scaled < threshold, float("-inf"))
    slot = torch.remainder(buf.position, buf.noise_window)
    noise = buf.noise.index_select(1, slot).squeeze(1)  # [batch, K, vocab]
    sampled = (filtered.softmax(dim=-1) / noise).argmax(dim=-1)
    return torch.where(buf.do_sample, sampled, greedy)


def decode_step(
    w: DecoderWeights,
    buf: StepBuffers,
    window: int,
    text_window: int,
    impl: str,
    candidates: int | None = None,
) -> None:
    """One full generation step: forward, choose tokens, apply the delay pattern, advance the position.

    ``candidates``: see :func:`choose_tokens` (None: rank the whole vocabulary).

    The token chosen at step ``s`` is the delayed code at index ``s`` (codebook ``k`` with delay ``d``
    holds frame ``s - d``); outside ``d <= s < d + num_frames`` the pad token is written and fed back
    instead, as Hugging Face's ``apply_delay_pattern_mask`` does. Where ``buf.forced`` holds a code (a
    code prefix, as Hugging Face's delay pattern mask holds the prompt's codes) that code is written instead.
    """
    tokens = choose_tokens(decoder_logits(w, buf, window, text_window, impl), buf, candidates)
    forced = buf.forced.index_select(2, buf.position).squeeze(-1)  # [batch, K]
    tokens = torch.where(forced >= 0, forced, tokens)
    index = buf.codebook_delay
    inside = (index <= buf.position) & (buf.position < index + buf.num_frames)
    tokens = torch.where(inside, tokens, w.pad_token_id)
    buf.codes.index_copy_(2, buf.position, tokens.unsqueeze(-1))
    buf.tokens.copy_(tokens)
    buf.position.add_(1)


def fill_cross_attention(
    w: DecoderWeights, buf: StepBuffers, states: torch.Tensor, mask: torch.Tensor
) -> None:
    """Write the cross-attention keys/values and mask for one request into ``buf``.

    Args:
        states: ``[2 * batch, text_len, hidden]`` encoder states (already projected and masked,
            conditional rows then unconditional zeros), ``text_len <= max_text``.
        mask: ``[2 * batch, text_len]`` 1 where a text position may be attended to.
    """
    rows, length, _ = states.shape
    heads, head_dim = w.num_heads, w.head_dim
    neg = torch.finfo(buf.cross_mask.dtype).min / 2
    buf.cross_mask.fill_(neg)
    buf.cross_mask[:, 0, 0, :length].masked_fill_(mask.bool(), 0.0)
    for i, layer in enumerate(w.layers):
        k = F.linear(states, layer.cross_k_w).view(rows, length, heads, head_dim).transpose(1, 2)
        v = F.linear(states, layer.cross_v_w).view(rows, length, heads, head_dim).transpose(1, 2)
        buf.cross_k[i].zero_()
        buf.cross_v[i].zero_()
        buf.cross_k[i][:, :, :length].copy_(k)
        buf.cross_v[i][:, :, :length].copy_(v)


def prefill(w: DecoderWeights, buf: StepBuffers, inputs: torch.Tensor, text_window: int, impl: str) -> None:
    """Fill the self-attention cache for positions ``0..P-1`` in one causal forward (a code prefix).

    What ``P`` calls of :func:`decoder_logits` would write into the cache, computed at once as Hugging
    Face's ``generate()`` does for its ``decoder_input_ids``; no logits are computed.

    Args:
        inputs: ``[batch, K, P]`` long: the token fed at each position (the start token, then the
            delayed codes of positions ``0..P-2``).
        text_window: text positions attended to (the prompt bucket).
    """
    batch, k_books, length = inputs.shape
    hidden, heads, head_dim = w.hidden, w.num_heads, w.head_dim
    rows = 2 * batch
    offsets = (buf.codebook_index * (w.vocab_size + 1))[None, :, None]
    x = F.embedding(inputs + offsets, w.embed).sum(dim=1)  # [batch, P, hidden]
    x = x.repeat(2, 1, 1) + buf.positions_table[:length]  # [rows, P, hidden]
    neg = torch.finfo(x.dtype).min / 2
    causal = (
        torch.full((length, length), neg, dtype=x.dtype, device=x.device).triu(1).view(1, 1, length, length)
    )
    cross_mask = buf.cross_mask[..., :text_window]
    for i, layer in enumerate(w.layers):
        h = F.layer_norm(x, (hidden,), layer.self_ln_w, layer.self_ln_b, layer.eps)
        q, k, v = F.linear(h, layer.qkv_w).view(rows, length, 3, heads, head_dim).permute(2, 0, 3, 1, 4)
        buf.self_k[i][:, :, :length].copy_(k)
        buf.self_v[i][:, :, :length].copy_(v)
        a = _attend(q, k, v, causal, impl).transpose(1, 2).reshape(rows, length, hidden)
        x = x + F.linear(a, layer.self_out_w)

        h = F.layer_norm(x, (hidden,), layer.cross_ln_w, layer.cross_ln_b, layer.eps)
        q = F.linear(h, layer.cross_q_w).view(rows, length, heads, head_dim).transpose(1, 2)
        ck, cv = buf.cross_k[i][:, :, :text_window], buf.cross_v[i][:, :, :text_window]
        a = _attend(q, ck, cv, cross_mask, impl).transpose(1, 2).reshape(rows, length, hidden)
        x = x + F.linear(a, layer.cross_out_w)

        h = F.layer_norm(x, (hidden,), layer.ffn_ln_w, layer.ffn_ln_b, layer.eps)
        x = x + F.linear(w.activation(F.linear(h, layer.fc1_w)), layer.fc2_w)
