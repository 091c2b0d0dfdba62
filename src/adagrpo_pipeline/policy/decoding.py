"""Batched decoding on the model's device: beam search (constrained by `SidTrie` or not) and
sampling (constrained or not, with temperature), with a KV cache.

The encoder runs once per input; the decoder runs once per semantic-ID level for the whole
batch × beams (or × samples): the only Python loop is over the L levels. Beam search keeps,
for each input, the `num_beams` best partial sequences by summed log-probability; with the
trie, tokens that leave the set of valid prefixes get -inf before the top-k. Every returned
sequence is looked up in the trie: item id (or -1) and a validity flag.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from transformers import PreTrainedModel

from adagrpo_pipeline.semantic_ids.trie import SidTrie

from .model import encoder_inputs


@dataclass
class Decoded:
    tokens: torch.Tensor  # (B, K, L) token ids
    scores: torch.Tensor  # (B, K) sequence log-probabilities (sum over the L tokens)
    items: torch.Tensor  # (B, K) item id, -1 where the sequence names no item
    valid: torch.Tensor  # (B, K) bool


class _Stepper:
    """The T5 decoder run one token at a time over batch × `expand` rows (the beams or samples of
    each input), with the model's own modules and weights and none of the work a decoding step
    does not need:

    - the encoder runs once per input, and so do the cross-attention keys and values (they depend
      on the input only): the `expand` queries of an input attend to its keys as one group, a
      (expand × positions) score matrix per input and head, instead of a copy per row;
    - self-attention keys and values go into preallocated (rows, heads, depth, d_kv) buffers;
      `reorder` moves the rows of the steps written so far (beams move within their input's group);
    - the decoder's relative position bias is computed once for all steps, and the only mask is
      the input's padding, built once per input (a step's query sees every earlier step).

    Numerically this is the decoder's forward with a cache (tested against it and against
    `generate`); the layers' dropout modules are applied as the model applies them."""

    def __init__(self, model: PreTrainedModel, input_ids: torch.Tensor, attention_mask: torch.Tensor, expand: int,
                 depth: int):
        self.model, self.expand, self.depth, self.step = model, expand, depth, 0
        self.decoder = model.get_decoder()
        enc = model.get_encoder()(**encoder_inputs(model, input_ids), attention_mask=attention_mask).last_hidden_state
        self.batch = enc.shape[0]
        first = self.decoder.block[0].layer[0].SelfAttention
        self.heads, self.d_kv = first.n_heads, first.key_value_proj_dim
        self.cross = []  # per layer: (keys, values), each (batch, heads, positions, d_kv)
        for block in self.decoder.block:
            attn = block.layer[1].EncDecAttention
            self.cross.append((self._heads(attn.k(enc)), self._heads(attn.v(enc))))
        dtype = self.cross[0][0].dtype
        # padding: an additive (batch, 1, 1, positions) mask as the model's (the dtype's minimum on
        # padded positions), or none when nothing is padded
        pad = attention_mask[:, None, None, :] == 0
        self.cross_mask = (torch.zeros(pad.shape, dtype=dtype, device=enc.device).masked_fill(pad, torch.finfo(dtype).min)
                           if bool(pad.any()) else None)
        rows = self.batch * expand
        self.keys = [enc.new_empty((rows, self.heads, depth, self.d_kv), dtype=dtype) for _ in self.decoder.block]
        self.values = [torch.empty_like(k) for k in self.keys]
        # position bias of query step t over keys 0..t: bias[:, :, t, : t + 1]
        steps = torch.arange(depth, device=enc.device)
        buckets = first._relative_position_bucket(
            steps[None, :] - steps[:, None], bidirectional=False, num_buckets=first.relative_attention_num_buckets,
            max_distance=first.relative_attention_max_distance)
        self.bias = first.relative_attention_bias(buckets).permute(2, 0, 1)[None].to(dtype)
        config = model.config
        scale = getattr(config, "scale_decoder_outputs", None)
        self.out_scale = config.d_model ** -0.5 if (config.tie_word_embeddings if scale is None else scale) else None

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        """(rows, positions, heads × d_kv) -> (rows, heads, positions, d_kv)"""
        return x.view(x.shape[0], x.shape[1], self.heads, self.d_kv).transpose(1, 2)

    def _self_attention(self, layer: int, attn, h: torch.Tensor) -> torch.Tensor:
        t = self.step
        q, k, v = self._heads(attn.q(h)), self._heads(attn.k(h)), self._heads(attn.v(h))
        self.keys[layer][:, :, t] = k[:, :, 0]
        self.values[layer][:, :, t] = v[:, :, 0]
        out = F.scaled_dot_product_attention(q, self.keys[layer][:, :, : t + 1], self.values[layer][:, :, : t + 1],
                                             attn_mask=self.bias[:, :, t : t + 1, : t + 1].to(q.dtype), scale=1.0)
        return attn.o(out.transpose(1, 2).reshape(h.shape[0], 1, -1))

    def _cross_attention(self, layer: int, attn, h: torch.Tensor) -> torch.Tensor:
        keys, values = self.cross[layer]
        # the rows of input b are b * expand ... (b + 1) * expand - 1: one group of queries per input
        q = attn.q(h).view(self.batch, self.expand, self.heads, self.d_kv).transpose(1, 2)
        mask = None if self.cross_mask is None else self.cross_mask.to(q.dtype)
        out = F.scaled_dot_product_attention(q, keys.to(q.dtype), values.to(q.dtype), attn_mask=mask, scale=1.0)
        return attn.o(out.transpose(1, 2).reshape(h.shape[0], 1, -1))

    def logprobs(self, last_tokens: torch.Tensor) -> torch.Tensor:
        """The decoder's log-probabilities (float32, whole vocabulary) of the next token after
        `last_tokens`, one row per (input, beam), and the step counter advanced."""
        if self.step >= self.depth:
            raise RuntimeError(f"decoding step {self.step + 1} of a {self.depth}-step search")
        dec = self.decoder
        hidden = dec.dropout(dec.embed_tokens(last_tokens[:, None]))
        for i, block in enumerate(dec.block):
            sa, ca, ff = block.layer[0], block.layer[1], block.layer[-1]
            hidden = hidden + sa.dropout(self._self_attention(i, sa.SelfAttention, sa.layer_norm(hidden)))
            hidden = hidden + ca.dropout(self._cross_attention(i, ca.EncDecAttention, ca.layer_norm(hidden)))
            hidden = ff(hidden)
        hidden = dec.dropout(dec.final_layer_norm(hidden))
        if self.out_scale is not None:
            hidden = hidden * self.out_scale
        self.step += 1
        return torch.log_softmax(self.model.lm_head(hidden)[:, -1].float(), dim=-1)

    def reorder(self, index: torch.Tensor) -> None:
        """Row r continues the sequence of row index[r]: the self-attention keys and values of the
        steps so far move with it (the cross-attention's are per input, and beams stay in their
        input's group)."""
        t = self.step
        for cache in (*self.keys, *self.values):
            cache[:, :, :t] = cache[index, :, :t]


def _constrain(logp: torch.Tensor, trie: SidTrie | None, nodes: torch.Tensor) -> torch.Tensor:
    """-inf on every token that does not extend a node's prefix validly (the model's vocabulary
    may be larger than the trie's: extra tokens, e.g. user tokens, are never allowed)."""
    if trie is None:
        return logp
    allowed = torch.zeros_like(logp, dtype=torch.bool)
    allowed[:, : trie.vocab_size] = trie.allowed_mask(nodes)
    return logp.masked_fill(~allowed, float("-inf"))


def _finish(tokens: torch.Tensor, scores: torch.Tensor, trie: SidTrie | None, lookup_trie: SidTrie | None) -> Decoded:
    ref = trie if trie is not None else lookup_trie
    items = ref.lookup(tokens) if ref is not None else torch.full(scores.shape, -1, device=scores.device)
    return Decoded(tokens=tokens, scores=scores, items=items, valid=items >= 0)


@torch.no_grad()
def beam_search(
    model: PreTrainedModel,
    input_ids: torch.Tensor,  # (B, T) token ids or (B, T, L) item token ids, see `encoder_inputs`
    attention_mask: torch.Tensor,
    num_beams: int,
    depth: int,
    trie: SidTrie | None = None,
    lookup_trie: SidTrie | None = None,
    start_token: int = 0,
) -> Decoded:
    """Top `num_beams` length-`depth` sequences per input, best first.

    `trie` constrains every step to valid prefixes; without it decoding is free over the
    whole vocabulary and `lookup_trie` (if given) only maps the results to items.
    """
    batch, device = input_ids.shape[0], input_ids.device
    stepper = _Stepper(model, input_ids, attention_mask, num_beams, depth)
    n = batch * num_beams
    last = torch.full((n,), start_token, dtype=torch.long, device=device)
    nodes = torch.zeros(n, dtype=torch.long, device=device)
    # only the first beam of each input is live at step 0 (all beams are the same empty prefix)
    beam_scores = torch.full((batch, num_beams), float("-inf"), device=device)
    beam_scores[:, 0] = 0.0
    tokens = torch.empty((n, 0), dtype=torch.long, device=device)
    offsets = (torch.arange(batch, device=device) * num_beams)[:, None]
    for _ in range(depth):
        logp = _constrain(stepper.logprobs(last), trie, nodes)
        vocab = logp.shape[-1]
        cand = (beam_scores.reshape(n, 1) + logp).reshape(batch, num_beams * vocab)
        top_scores, top_idx = cand.topk(num_beams, dim=1)
        src = (offsets + torch.div(top_idx, vocab, rounding_mode="floor")).reshape(-1)
        new_tok = (top_idx % vocab).reshape(-1)
        stepper.reorder(src)
        tokens = torch.cat([tokens[src], new_tok[:, None]], dim=1)
        if trie is not None:
            nodes = trie.step(nodes[src], new_tok)
        beam_scores, last = top_scores, new_tok
    return _finish(tokens.reshape(batch, num_beams, depth), beam_scores, trie, lookup_trie)


@torch.no_grad()
def sample(
    model: PreTrainedModel,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    num_samples: int,
    depth: int,
    temperature: float = 1.0,
    trie: SidTrie | None = None,
    lookup_trie: SidTrie | None = None,
    generator: torch.Generator | None = None,
    start_token: int = 0,
    span: slice | None = None,
    total: int | None = None,
) -> Decoded:
    """`num_samples` sequences per input from the policy at `temperature` (constrained to
    valid prefixes with `trie`). Scores are the policy's own log-probabilities of the sampled
    tokens (temperature 1, not renormalised over the allowed tokens).

    Each token is drawn as `torch.multinomial(probs, 1)` draws it, argmax(probs / q) with
    q ~ Exp(1) (the exponential race), with q drawn for a batch of `total` inputs (default: this
    one) of which these inputs are rows `span`: one process decoding the whole batch draws
    exactly what `torch.multinomial` would, and a process decoding its part of the batch draws
    what one process draws for those rows."""
    if temperature <= 0:
        raise ValueError("temperature must be > 0; use beam_search for greedy decoding")
    batch, device = input_ids.shape[0], input_ids.device
    total = batch if total is None else total
    span = slice(0, batch) if span is None else span
    if span.stop - span.start != batch or span.stop > total:
        raise ValueError(f"sample: rows {span.start}:{span.stop} of a batch of {total} do not match {batch} inputs")
    stepper = _Stepper(model, input_ids, attention_mask, num_samples, depth)
    n = batch * num_samples
    last = torch.full((n,), start_token, dtype=torch.long, device=device)
    nodes = torch.zeros(n, dtype=torch.long, device=device)
    scores = torch.zeros(n, device=device)
    tokens = torch.empty((n, 0), dtype=torch.long, device=device)
    for _ in range(depth):
        logp = _constrain(stepper.logprobs(last), trie, nodes)
        probs = torch.softmax(logp / temperature, dim=-1)
        q = torch.empty((total * num_samples, probs.shape[-1]), dtype=probs.dtype, device=device)
        q = q.exponential_(1, generator=generator)[span.start * num_samples : span.stop * num_samples]
        tok = (probs / q).argmax(dim=-1)
        scores = scores + logp.gather(1, tok[:, None]).squeeze(1)
        tokens = torch.cat([tokens, tok[:, None]], dim=1)
        if trie is not None:
            nodes = trie.step(nodes, tok)
        last = tok
    return _finish(tokens.reshape(batch, num_samples, depth), scores.reshape(batch, num_samples), trie, lookup_trie)
