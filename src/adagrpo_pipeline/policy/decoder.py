"""The policy's T5 decoder over groups of sequences that share an input: `group` sequences per
input (the beams or samples of a decoding, y* and the rollouts of an RL step).

`transformers` runs the decoder on batch × group rows, each with its own copy of the encoder
states: every row projects the encoder states to cross-attention keys and values again, and
attends to its own copy. Those keys and values depend on the input only, so here they are
projected once per input, and the group's queries attend to them together (one
(group × positions) score matrix per input and head). Everything else is the decoder's own
modules and weights, applied as `transformers` applies them (layer norms, the relative position
bias of the first block, residuals, dropout in training mode, the feed-forward layers, the output
scaling of tied embeddings): the results are the model's, within float rounding (tested against
its forward, gradients included).

Two uses: `GroupedDecoder.logits` (teacher forced, whole sequences, with gradients) and
`GroupedDecoder.step` (one token at a time with self-attention buffers, for decoding)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from transformers import PreTrainedModel


class GroupedDecoder:
    """The decoder of `model` for `group` sequences of at most `length` tokens per input, given
    the encoder states `hidden` (batch, positions, d_model) and their `attention_mask`
    (batch, positions). Rows are input-major: rows b * group ... (b + 1) * group - 1 are input b's."""

    def __init__(self, model: PreTrainedModel, hidden: torch.Tensor, attention_mask: torch.Tensor, group: int,
                 length: int):
        self.model, self.group, self.length = model, group, length
        self.decoder = model.get_decoder()
        self.batch = hidden.shape[0]
        first = self.decoder.block[0].layer[0].SelfAttention
        self.heads, self.d_kv = first.n_heads, first.key_value_proj_dim
        self.cross = []  # per layer: (keys, values), each (batch, heads, positions, d_kv)
        for block in self.decoder.block:
            attn = block.layer[1].EncDecAttention
            self.cross.append((self._heads(attn.k(hidden)), self._heads(attn.v(hidden))))
        dtype = self.cross[0][0].dtype
        # padding: an additive (batch, 1, 1, positions) mask as the model's (the dtype's minimum on
        # padded positions), or none when nothing is padded
        pad = attention_mask[:, None, None, :] == 0
        self.cross_mask = (torch.zeros(pad.shape, dtype=dtype, device=hidden.device).masked_fill(pad, torch.finfo(dtype).min)
                           if bool(pad.any()) else None)
        # the relative position bias of query i over key j (1, heads, length, length), the
        # dtype's minimum where j > i (causal)
        steps = torch.arange(length, device=hidden.device)
        relative = steps[None, :] - steps[:, None]
        buckets = first._relative_position_bucket(relative, bidirectional=False,
                                                  num_buckets=first.relative_attention_num_buckets,
                                                  max_distance=first.relative_attention_max_distance)
        bias = first.relative_attention_bias(buckets).permute(2, 0, 1)[None].to(dtype)
        self.bias = bias.masked_fill(relative > 0, torch.finfo(dtype).min)
        config = model.config
        scale = getattr(config, "scale_decoder_outputs", None)  # transformers 5; 4.x scales with tied embeddings
        self.out_scale = config.d_model ** -0.5 if (config.tie_word_embeddings if scale is None else scale) else None
        self.keys: list[torch.Tensor] = []  # step(): per layer (rows, heads, length, d_kv)
        self.values: list[torch.Tensor] = []
        self.steps = 0

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        """(rows, positions, heads × d_kv) -> (rows, heads, positions, d_kv)"""
        return x.view(x.shape[0], x.shape[1], self.heads, self.d_kv).transpose(1, 2)

    @staticmethod
    def _attend(attn, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        """T5 attention (no 1/sqrt(d) scaling), the attention weights' dropout in training mode."""
        if mask is not None:
            mask = mask.to(q.dtype)
        return F.scaled_dot_product_attention(q, k.to(q.dtype), v.to(q.dtype), attn_mask=mask, scale=1.0,
                                              dropout_p=attn.dropout if attn.training else 0.0)

    def _cross_attention(self, layer: int, attn, h: torch.Tensor) -> torch.Tensor:
        keys, values = self.cross[layer]
        rows, length = h.shape[0], h.shape[1]
        # the group's queries of input b, all positions: (batch, heads, group × length, d_kv)
        q = attn.q(h).view(self.batch, self.group * length, self.heads, self.d_kv).transpose(1, 2)
        out = self._attend(attn, q, keys, values, self.cross_mask)
        return attn.o(out.transpose(1, 2).reshape(rows, length, -1))

    def _layers(self, tokens: torch.Tensor, self_attention) -> torch.Tensor:
        dec = self.decoder
        hidden = dec.dropout(dec.embed_tokens(tokens))
        for i, block in enumerate(dec.block):
            sa, ca, ff = block.layer[0], block.layer[1], block.layer[-1]
            hidden = hidden + sa.dropout(self_attention(i, sa.SelfAttention, sa.layer_norm(hidden)))
            hidden = hidden + ca.dropout(self._cross_attention(i, ca.EncDecAttention, ca.layer_norm(hidden)))
            hidden = ff(hidden)
        hidden = dec.dropout(dec.final_layer_norm(hidden))
        if self.out_scale is not None:
            hidden = hidden * self.out_scale
        return self.model.lm_head(hidden)

    def logits(self, tokens: torch.Tensor) -> torch.Tensor:
        """Teacher forced: the logits (rows, T, vocab) after each prefix of `tokens` (rows, T),
        the decoder inputs (start token, then the sequence shifted right), T <= `length`."""
        rows, length = tokens.shape
        if rows != self.batch * self.group or length > self.length:
            raise ValueError(f"decoder inputs of shape {tuple(tokens.shape)}: expected ({self.batch * self.group}, "
                             f"<= {self.length})")

        def self_attention(_: int, attn, h: torch.Tensor) -> torch.Tensor:
            q, k, v = self._heads(attn.q(h)), self._heads(attn.k(h)), self._heads(attn.v(h))
            out = self._attend(attn, q, k, v, self.bias[:, :, :length, :length])
            return attn.o(out.transpose(1, 2).reshape(rows, length, -1))

        return self._layers(tokens, self_attention)

    def step(self, last_tokens: torch.Tensor) -> torch.Tensor:
        """One decoding step: the logits (rows, vocab) of the next token after `last_tokens`
        (rows,), the tokens of this step; the self-attention keys and values of the steps so
        far are kept (and moved by `reorder`)."""
        t = self.steps
        if t >= self.length:
            raise RuntimeError(f"decoding step {t + 1} of a {self.length}-step search")
        rows = last_tokens.shape[0]

        def self_attention(layer: int, attn, h: torch.Tensor) -> torch.Tensor:
            q, k, v = self._heads(attn.q(h)), self._heads(attn.k(h)), self._heads(attn.v(h))
            if layer == len(self.keys):  # the first step: the buffers, in the projections' dtype
                self.keys.append(k.new_empty((rows, self.heads, self.length, self.d_kv)))
                self.values.append(v.new_empty((rows, self.heads, self.length, self.d_kv)))
            self.keys[layer][:, :, t] = k[:, :, 0]
            self.values[layer][:, :, t] = v[:, :, 0]
            out = self._attend(attn, q, self.keys[layer][:, :, : t + 1], self.values[layer][:, :, : t + 1],
                               self.bias[:, :, t : t + 1, : t + 1])
            return attn.o(out.transpose(1, 2).reshape(rows, 1, -1))

        logits = self._layers(last_tokens[:, None], self_attention)[:, -1]
        self.steps += 1
        return logits

    def reorder(self, index: torch.Tensor) -> None:
        """Row r continues the sequence of row index[r]: the self-attention keys and values of the
        steps so far move with it (the cross-attention's are per input; rows must stay within
        their input's group, as beams do)."""
        t = self.steps
        for cache in (*self.keys, *self.values):
            cache[:, :, :t] = cache[index, :, :t]
