"""Decoding engine: equivalence with `transformers` constrained generate, validity, sampling."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from adagrpo_pipeline.adagrpo.rollouts import sequence_logprobs
from adagrpo_pipeline.policy.decoding import _Stepper, beam_search, sample
from adagrpo_pipeline.policy.model import (
    HistoryEncoder,
    PolicyLayout,
    PolicySize,
    build_policy,
    encoder_inputs,
    user_bucket,
)
from adagrpo_pipeline.semantic_ids.quantize import add_dedup_level
from adagrpo_pipeline.semantic_ids.trie import SidTrie
from adagrpo_pipeline.semantic_ids.vocab import SidVocab

TINY = PolicySize(d_model=32, d_kv=8, d_ff=64, num_layers=2, num_decoder_layers=2, num_heads=4, dropout_rate=0.0)


@pytest.fixture(scope="module")
def case():
    rng = np.random.default_rng(0)
    vocab = SidVocab((8, 8, 8))
    tokens = vocab.encode(add_dedup_level(rng.integers(0, 8, size=(150, 2)), 8))
    trie = SidTrie.build(tokens, np.arange(150), vocab.size)
    layout = PolicyLayout(vocab, max_items=5, user_buckets=7)
    model = build_policy(layout, TINY, seed=0).eval()
    encoder = HistoryEncoder(layout, tokens)
    histories = [rng.integers(0, 150, size=n) for n in (5, 3, 1, 8, 2, 5)]
    x, mask = encoder(histories, user_ids=np.arange(6))
    return vocab, tokens, trie, model, x, mask


def _hf_allowed(trie: SidTrie):
    def allowed(batch_id: int, ids: torch.Tensor) -> list[int]:
        node = trie.walk(ids[1:][None, :])[0] if len(ids) > 1 else torch.tensor(0)
        return torch.nonzero(trie.allowed_mask(node[None])[0]).ravel().tolist()
    return allowed


@pytest.mark.parametrize(("beams", "encoder_input"), [(4, "tokens"), (10, "tokens"), (10, "items")])
def test_constrained_beam_search_equals_transformers_generate(case, beams: int, encoder_input: str) -> None:
    vocab, tokens, trie, model, x, mask = case
    if encoder_input == "items":
        layout = PolicyLayout(vocab, max_items=5, user_buckets=7, encoder_input="items")
        x, mask = HistoryEncoder(layout, tokens)([np.arange(i, i + 4) for i in range(6)], user_ids=np.arange(6))
        assert x.shape == (6, 6, 3)
    ours = beam_search(model, x, mask, beams, vocab.levels, trie=trie)
    hf = model.generate(**encoder_inputs(model, x), attention_mask=mask, num_beams=beams, num_return_sequences=beams,
                        max_new_tokens=vocab.levels, prefix_allowed_tokens_fn=_hf_allowed(trie), length_penalty=0.0,
                        do_sample=False, early_stopping=False, output_scores=True, return_dict_in_generate=True)
    hf_tokens = hf.sequences[:, 1:].reshape(len(x), beams, vocab.levels)
    assert torch.equal(trie.lookup(hf_tokens), ours.items)
    torch.testing.assert_close(hf.sequences_scores.reshape(len(x), beams), ours.scores, atol=1e-4, rtol=0)
    assert ours.valid.all()
    assert (ours.scores[:, :-1] >= ours.scores[:, 1:]).all()  # best first


def test_decoding_steps_equal_the_models_teacher_forced_forward(case) -> None:
    """The engine's own decoder step (cross-attention keys/values once per input, preallocated
    self-attention buffers, rows reordered between steps) gives the log-probabilities of the
    model's forward on the same token sequences, padded inputs included."""
    vocab, _, _, model, x, mask = case
    assert not bool(mask.all())  # some inputs are padded
    expand, depth, gen = 3, vocab.levels, torch.Generator().manual_seed(0)
    rows = len(x) * expand
    seqs = torch.randint(1, vocab.size, (rows, depth), generator=gen)
    stepper = _Stepper(model, x, mask, expand, depth)
    history = torch.zeros((rows, 1), dtype=torch.long)  # the decoder start token
    for t in range(depth):
        with torch.no_grad():
            ours = stepper.logprobs(history[:, -1])
            ref = model(**encoder_inputs(model, x.repeat_interleave(expand, 0)),
                        attention_mask=mask.repeat_interleave(expand, 0), decoder_input_ids=history).logits[:, -1]
        torch.testing.assert_close(ours, torch.log_softmax(ref.float(), -1), atol=1e-5, rtol=1e-5)
        # rows move within their input's group, as beams do
        src = (torch.arange(rows) // expand) * expand + torch.randint(0, expand, (rows,), generator=gen)
        stepper.reorder(src)
        history = torch.cat([history[src], seqs[:, t : t + 1]], dim=1)
    with pytest.raises(RuntimeError, match="decoding step 4 of a 3-step search"):
        stepper.logprobs(history[:, -1])


def test_unconstrained_beams_score_at_least_the_constrained_ones(case) -> None:
    vocab, tokens, trie, model, x, mask = case
    free = beam_search(model, x, mask, 6, vocab.levels, lookup_trie=trie)
    constrained = beam_search(model, x, mask, 6, vocab.levels, trie=trie)
    assert (free.scores[:, 0] >= constrained.scores[:, 0] - 1e-5).all()
    # every sequence is looked up: the item whose tokens it is (a plain dict of the item table), else -1
    item_of = {tuple(t): i for i, t in enumerate(np.asarray(tokens).tolist())}
    expected = [[item_of.get(tuple(seq), -1) for seq in row] for row in free.tokens.tolist()]
    assert free.items.tolist() == expected and torch.equal(free.valid, free.items >= 0)
    # an untrained model over a 3 + 24 + 7 token vocabulary mostly leaves the item set
    assert (~free.valid).any()


def test_sampling_is_seeded_and_respects_the_trie(case) -> None:
    vocab, _, trie, model, x, mask = case
    draw = lambda seed, **kw: sample(model, x, mask, 16, vocab.levels, trie=trie,  # noqa: E731
                                     generator=torch.Generator().manual_seed(seed), **kw)
    a, b, c = draw(1), draw(1), draw(2)
    assert torch.equal(a.tokens, b.tokens) and not torch.equal(a.tokens, c.tokens)
    assert a.valid.all() and a.tokens.shape == (6, 16, 3)
    # scores are the policy's log-probabilities of the sampled tokens
    logits = model(input_ids=x.repeat_interleave(16, 0), attention_mask=mask.repeat_interleave(16, 0),
                   decoder_input_ids=torch.cat([torch.zeros(96, 1, dtype=torch.long), a.tokens.reshape(96, 3)[:, :-1]], 1)).logits
    ref = torch.log_softmax(logits, -1).gather(2, a.tokens.reshape(96, 3, 1)).sum((1, 2)).reshape(6, 16)
    torch.testing.assert_close(a.scores, ref, atol=1e-4, rtol=0)
    cold = draw(1, temperature=1e-4)
    best = beam_search(model, x, mask, 1, vocab.levels, trie=trie)
    assert (cold.items == best.items).float().mean() > 0.99  # temperature → 0 is greedy


def test_sampling_draws_by_inversion_and_a_part_of_the_batch_draws_its_rows(case) -> None:
    vocab, _, trie, model, x, mask = case
    whole = sample(model, x, mask, 8, vocab.levels, trie=trie, generator=torch.Generator().manual_seed(3))
    # rows 2:5 of the same batch, decoded alone: the same draws (a process with its part of a batch)
    part = sample(model, x[2:5], mask[2:5], 8, vocab.levels, trie=trie, generator=torch.Generator().manual_seed(3),
                  span=slice(2, 5), total=len(x))
    assert torch.equal(part.tokens, whole.tokens[2:5])
    alone = sample(model, x[2:5], mask[2:5], 8, vocab.levels, trie=trie, generator=torch.Generator().manual_seed(3))
    assert not torch.equal(alone.tokens, whole.tokens[2:5])  # without the span: other draws
    # the first token: the inverse of the constrained first-step distribution's CDF at the
    # generator's first uniforms
    enc = model.get_encoder()(input_ids=x, attention_mask=mask).last_hidden_state.repeat_interleave(8, 0)
    logits = model(encoder_outputs=(enc,), attention_mask=mask.repeat_interleave(8, 0),
                   decoder_input_ids=torch.zeros(len(enc), 1, dtype=torch.long)).logits[:, -1]
    allowed = torch.zeros_like(logits, dtype=torch.bool)
    allowed[:, : trie.vocab_size] = trie.allowed_mask(torch.zeros(len(enc), dtype=torch.long))
    probs = torch.softmax(torch.log_softmax(logits, -1).masked_fill(~allowed, float("-inf")), -1).double()
    u = torch.rand(len(enc), dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    first = ((probs.cumsum(-1) / probs.sum(-1, keepdim=True)) <= u[:, None]).sum(-1)
    assert torch.equal(first, whole.tokens[:, :, 0].reshape(-1))
    assert allowed.gather(1, first[:, None]).all()
    with pytest.raises(ValueError, match="rows 2:5 of a batch of 4"):
        sample(model, x[2:5], mask[2:5], 8, vocab.levels, span=slice(2, 5), total=4)


def test_sampling_frequencies_match_the_policys_probabilities(case) -> None:
    """4,000 draws of one input's first token: each token's frequency within 4 standard errors
    of its probability under the policy, and no token outside the trie."""
    vocab, _, trie, model, x, mask = case
    n = 4000
    out = sample(model, x[:1], mask[:1], n, vocab.levels, trie=trie, generator=torch.Generator().manual_seed(0))
    logits = model(input_ids=x[:1], attention_mask=mask[:1], decoder_input_ids=torch.zeros(1, 1, dtype=torch.long)
                   ).logits[0, -1].detach()
    allowed = torch.zeros_like(logits, dtype=torch.bool)
    allowed[: trie.vocab_size] = trie.allowed_mask(torch.zeros(1, dtype=torch.long))[0]
    probs = torch.softmax(logits.masked_fill(~allowed, float("-inf")), -1).double()
    freq = torch.bincount(out.tokens[0, :, 0], minlength=len(probs)).double() / n
    assert freq[~allowed].sum() == 0
    se = (probs * (1 - probs) / n).sqrt()
    assert ((freq - probs).abs() <= 4 * se + 1e-12).all(), (freq - probs).abs().max()


def test_history_encoder_layout(case) -> None:
    vocab, tokens, *_ = case
    layout = PolicyLayout(vocab, max_items=2, user_buckets=5)
    ids, mask = HistoryEncoder(layout, tokens)([np.array([4, 7, 9]), np.array([3])], user_ids=np.array([10, 11]))
    assert ids.shape == (2, 1 + 2 * 3)
    assert ids[0].tolist() == [vocab.size + user_bucket(np.array([10]), 5)[0], *tokens[7], *tokens[9]]
    assert ids[1, 4:].tolist() == [0, 0, 0] and mask[1].tolist() == [1, 1, 1, 1, 0, 0, 0]
    with pytest.raises(ValueError, match="pass user_ids"):
        HistoryEncoder(layout, tokens)([np.array([1])])


@pytest.mark.parametrize("group", [1, 4])
def test_grouped_teacher_forced_pass_equals_the_models_forward_with_gradients(case, group: int) -> None:
    """`sequence_logprobs` (the RL step's teacher-forced pass) through `GroupedDecoder`: the
    log-probabilities and every weight's gradient equal the model's own forward over the
    sequences with a copy of the encoder states per sequence."""
    vocab, tokens, _, model, x, mask = case
    gen = torch.Generator().manual_seed(1)
    seqs = torch.as_tensor(tokens[torch.randint(0, len(tokens), (len(x), group), generator=gen).numpy()])
    hidden = model.get_encoder()(**encoder_inputs(model, x), attention_mask=mask).last_hidden_state
    ours = sequence_logprobs(model, hidden, mask, seqs)
    ours.sum().backward()
    ours_grads = {k: p.grad.clone() for k, p in model.named_parameters() if p.grad is not None}
    model.zero_grad()
    flat = seqs.reshape(-1, vocab.levels)
    dec_in = torch.cat([torch.zeros_like(flat[:, :1]), flat[:, :-1]], dim=1)
    hidden = model.get_encoder()(**encoder_inputs(model, x), attention_mask=mask).last_hidden_state
    out = model(encoder_outputs=(hidden.repeat_interleave(group, 0),), attention_mask=mask.repeat_interleave(group, 0),
                decoder_input_ids=dec_in, use_cache=False)
    ref = torch.log_softmax(out.logits.float(), -1).gather(-1, flat[..., None]).squeeze(-1).reshape(seqs.shape)
    ref.sum().backward()
    ref_grads = {k: p.grad.clone() for k, p in model.named_parameters() if p.grad is not None}
    model.zero_grad()
    torch.testing.assert_close(ours, ref, atol=1e-5, rtol=1e-5)
    assert ours_grads.keys() == ref_grads.keys() and len(ours_grads) > 20
    for k in ref_grads:
        torch.testing.assert_close(ours_grads[k], ref_grads[k], atol=1e-5, rtol=1e-4, msg=k)
