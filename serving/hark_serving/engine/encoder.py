"""A leaner forward pass of SenseVoiceSmall's encoder, for the CPU int8 path.

funasr's `SenseVoiceEncoderSmall.forward` spends about a third of an int8 pass
outside the matrix products: it multiplies every layer's activations by the
padding mask three times even when nothing is padded, computes attention as
matmul, masked fill, softmax, masked fill and matmul again, and copies the
FSMN input through a padding layer. This pass computes the same function from
the same modules and weights:

- attention through `scaled_dot_product_attention` (one fused kernel) with the
  padding as a key mask, which is what funasr's fill of -inf does;
- the padding masks only where a row is padded: a batch of one segment, or of
  equal lengths, skips them;
- the FSMN's symmetric zero padding inside the convolution;
- the residual sums in place.

Summation order differs from funasr's, so float32 results differ in the last
bits: that is why the float32 precision keeps funasr's own forward (the same
text as `AutoModel`, byte for byte) and only int8, already approximate, runs
this one. tests/unit/engine/test_encoder.py holds it to funasr's forward.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F


def supports(encoder: Any) -> bool:
    """Whether `encoder` has the layout this pass computes (SenseVoiceSmall's, pre-norm SANM)."""
    layers = [*encoder.encoders0, *encoder.encoders, *encoder.tp_encoders]
    return bool(layers) and all(
        layer.normalize_before
        and not layer.concat_after
        and layer.self_attn.pad_fn.padding[0] == layer.self_attn.pad_fn.padding[1]
        for layer in layers
    )


def _attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, key_bias: torch.Tensor | None
) -> torch.Tensor:
    """Attention as plain matrix products and a softmax, the padding as an additive bias.

    For an exported graph: torch exports `scaled_dot_product_attention` with a boolean
    mask as NaN checks and selects over every (row, head, query, key) score, two
    passes more over the largest tensor of each layer.
    """
    scores = torch.matmul(q * q.shape[-1] ** -0.5, k.transpose(-2, -1))
    if key_bias is not None:
        scores = scores + key_bias
    return torch.matmul(torch.softmax(scores, dim=-1), v)


def _layer(
    layer: Any,
    x: torch.Tensor,
    keep: torch.Tensor | None,
    key_mask: torch.Tensor | None,
    key_bias: torch.Tensor | None = None,
    explicit: bool = False,
) -> torch.Tensor:
    """One EncoderLayerSANM (pre-norm, no concat), as funasr computes it."""
    attn = layer.self_attn
    batch, time, _ = x.shape
    h = layer.norm1(x)
    q, k, v = torch.split(attn.linear_q_k_v(h), attn.h * attn.d_k, dim=-1)
    # FSMN memory: a depthwise convolution over time of the (masked) values, plus them.
    # Attention takes the values unmasked, as in funasr: padded keys are masked there.
    fsmn_in = v if keep is None else v * keep
    conv = attn.fsmn_block
    memory = F.conv1d(fsmn_in.transpose(1, 2), conv.weight, None, 1, attn.pad_fn.padding[0], 1,
                      conv.groups).transpose(1, 2)  # fmt: skip
    memory += fsmn_in
    if keep is not None:
        memory *= keep
    heads = (batch, time, attn.h, attn.d_k)
    qh, kh, vh = (t.reshape(heads).transpose(1, 2) for t in (q, k, v))
    if explicit:
        context = _attention(qh, kh, vh, key_bias)
    else:
        context = F.scaled_dot_product_attention(qh, kh, vh, attn_mask=key_mask)
    out: torch.Tensor = attn.linear_out(
        context.transpose(1, 2).reshape(batch, time, attn.h * attn.d_k)
    )
    out += memory
    if layer.in_size == layer.size:
        out += x
    h = layer.norm2(out)
    ff = layer.feed_forward
    out += ff.w_2(torch.relu_(ff.w_1(h)))
    return out


def forward(
    encoder: Any,
    speech: torch.Tensor,
    lengths: torch.Tensor,
    masked: bool | None = None,
    explicit_attention: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """`encoder(speech, lengths)`, computed leaner; `speech` is not changed.

    `masked`: apply the padding masks (True), skip them (False: no row is padded), or
    decide from `lengths` (None). An exported graph passes True, since it serves any
    batch, and `explicit_attention` (see `_attention`).
    """
    _, time, _ = speech.shape
    padded = bool((lengths < time).any()) if masked is None else masked
    keep = key_mask = key_bias = None
    if padded:
        valid = torch.arange(time, device=speech.device)[None, :] < lengths[:, None]
        keep = valid[:, :, None].to(speech.dtype)
        key_mask = valid[:, None, None, :]  # True where a key may be attended to
        if explicit_attention:  # exp(-1e9) is 0: a padded key gets no weight, as -inf
            key_bias = ((1.0 - keep.transpose(1, 2)) * -1e9)[:, None, :, :]
    x = encoder.embed(speech * encoder.output_size() ** 0.5)  # funasr's position encoding
    for layer in [*encoder.encoders0, *encoder.encoders]:
        x = _layer(layer, x, keep, key_mask, key_bias, explicit_attention)
    x = encoder.after_norm(x)
    for layer in encoder.tp_encoders:
        x = _layer(layer, x, keep, key_mask, key_bias, explicit_attention)
    x = encoder.tp_norm(x)
    return x, lengths.int()
