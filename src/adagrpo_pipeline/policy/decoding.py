"""Batched decoding on the model's device: beam search (constrained by `SidTrie` or not) and
sampling (constrained or not, with temperature), with a KV cache.

The encoder runs once per input; the decoder (`policy.decoder.GroupedDecoder`: cross-attention
keys and values once per input, not per beam) runs once per semantic-ID level for the whole
batch × beams (or × samples): the only Python loop is over the L levels. Beam search keeps,
for each input, the `num_beams` best partial sequences by summed log-probability; with the
trie, tokens that leave the set of valid prefixes get -inf before the top-k. Every returned
sequence is looked up in the trie: item id (or -1) and a validity flag.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from transformers import PreTrainedModel

from adagrpo_pipeline.semantic_ids.trie import SidTrie

from .decoder import GroupedDecoder
from .model import encoder_inputs


@dataclass
class Decoded:
    tokens: torch.Tensor  # (B, K, L) token ids
    scores: torch.Tensor  # (B, K) sequence log-probabilities (sum over the L tokens)
    items: torch.Tensor  # (B, K) item id, -1 where the sequence names no item
    valid: torch.Tensor  # (B, K) bool


class _Stepper:
    """The encoder once per input, then the decoder one token at a time over batch × `expand`
    rows (the beams or samples of each input) with `GroupedDecoder`: the cross-attention keys
    and values once per input, preallocated self-attention buffers, the position bias and the
    padding mask built once."""

    def __init__(self, model: PreTrainedModel, input_ids: torch.Tensor, attention_mask: torch.Tensor, expand: int,
                 depth: int):
        enc = model.get_encoder()(**encoder_inputs(model, input_ids), attention_mask=attention_mask).last_hidden_state
        self.decoder = GroupedDecoder(model, enc, attention_mask, expand, depth)

    def logprobs(self, last_tokens: torch.Tensor) -> torch.Tensor:
        """Log-probabilities (float32, whole vocabulary) of the next token, one row per (input, beam)."""
        return torch.log_softmax(self.decoder.step(last_tokens).float(), dim=-1)

    def reorder(self, index: torch.Tensor) -> None:
        """Row r continues row index[r]'s sequence (beams move within their input's group)."""
        self.decoder.reorder(index)


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

    Each token is drawn by inversion: one uniform u per row and step, the first token whose
    cumulative probability (float64) exceeds u times the total (a token of probability 0 is
    never drawn). The uniforms are drawn for a batch of `total` inputs (default: this one) of
    which these inputs are rows `span`: a process decoding its part of the batch draws what one
    process decoding the whole batch draws for those rows. (One random number per row, not one
    per vocabulary entry as `torch.multinomial`'s exponential race: that noise cost more than the
    decoder's arithmetic, `benchmarks/rl_step.py`.)"""
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
        cdf = torch.softmax(logp / temperature, dim=-1).double().cumsum(dim=-1)
        u = torch.rand((total * num_samples, 1), dtype=torch.float64, device=device, generator=generator)
        u = u[span.start * num_samples : span.stop * num_samples]
        tok = torch.searchsorted(cdf, u * cdf[:, -1:], right=True).squeeze(1).clamp_max(cdf.shape[-1] - 1)
        scores = scores + logp.gather(1, tok[:, None]).squeeze(1)
        tokens = torch.cat([tokens, tok[:, None]], dim=1)
        if trie is not None:
            nodes = trie.step(nodes, tok)
        last = tok
    return _finish(tokens.reshape(batch, num_samples, depth), scores.reshape(batch, num_samples), trie, lookup_trie)
