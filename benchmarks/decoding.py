"""Constrained beam search: our engine against the strongest ordinary alternative and against
the bound, same model (random weights), same inputs, same catalog.

    python benchmarks/decoding.py --device cpu --size tiger --levels 3 --codebook 128 --items 5000 --beams 50 --topk 20 --batch 8
    python benchmarks/decoding.py --device cuda --size tiger --levels 4 --codebook 256 --items 12000 --beams 20 --topk 10 --batch 1024

- ours: `policy.decoding.beam_search` with the `SidTrie`;
- baseline: `transformers` `generate(num_beams=…, prefix_allowed_tokens_fn=…)` with the ordinary
  trie, a Python dict from each valid prefix (a tuple of tokens) to its allowed next tokens;
- bound: the bare forward work of the search, the encoder once and `depth` cached decoder steps
  over batch × beams, with an argmax only (no trie, no beam bookkeeping);
- `--extra-tensor-trie`: also `generate` with a callback that walks our tensor trie on every call
  (a labelled extra, not the baseline: the callback, not `generate`, dominates its time).
The model sizes are read from conf/base (small) and conf/gpu (tiger) `parameters_sft.yml`; the
catalog is `--items` random items of `--levels` levels of `--codebook` codes plus a dedup level.
"items/s" = inputs (users) for which a top-k list is produced per second. Each engine is timed
after one warm-up call; `--profile N` also prints the torch profiler's top N operators of one beam
search. The last line is one JSON object: items/s of each, ours / baseline and
ours / bound speed ratios, and the share of top-k slots where ours and `generate` name the same item.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch
from common import catalog, policy_size
from transformers.cache_utils import DynamicCache, EncoderDecoderCache

from adagrpo_pipeline.policy.decoding import beam_search
from adagrpo_pipeline.policy.model import build_policy, encoder_inputs
from adagrpo_pipeline.semantic_ids.trie import SidTrie


def dict_allowed_fn(tokens: np.ndarray):
    """The ordinary trie: {prefix tuple: allowed next tokens} for every prefix of every item."""
    allowed: dict[tuple[int, ...], set[int]] = {}
    for row in tokens.tolist():
        for depth in range(len(row)):
            allowed.setdefault(tuple(row[:depth]), set()).add(row[depth])
    table = {k: sorted(v) for k, v in allowed.items()}

    def fn(batch_id: int, ids: torch.Tensor) -> list[int]:
        return table.get(tuple(ids[1:].tolist()), [])
    return fn


def hf_allowed_fn(trie: SidTrie):
    def allowed(batch_id: int, ids: torch.Tensor) -> list[int]:
        node = trie.walk(ids[1:][None, :])[0] if len(ids) > 1 else torch.tensor(0, device=ids.device)
        return torch.nonzero(trie.allowed_mask(node[None])[0]).ravel().tolist()
    return allowed


@torch.no_grad()
def bare_forward(model, x: torch.Tensor, mask: torch.Tensor, beams: int, depth: int) -> torch.Tensor:
    """The forward work a beam search cannot avoid: the encoder once per input, then `depth`
    cached decoder steps over batch × beams, each followed by an argmax only."""
    enc = model.get_encoder()(**encoder_inputs(model, x), attention_mask=mask).last_hidden_state
    enc, m = enc.repeat_interleave(beams, dim=0), mask.repeat_interleave(beams, dim=0)
    cache = EncoderDecoderCache(DynamicCache(), DynamicCache())
    last = torch.zeros(len(enc), 1, dtype=torch.long, device=x.device)
    for _ in range(depth):
        out = model(encoder_outputs=(enc,), attention_mask=m, decoder_input_ids=last, past_key_values=cache,
                    use_cache=True)
        last = out.logits[:, -1].argmax(dim=-1, keepdim=True)
    return last


def timed(fn, device: torch.device, repeats: int):
    fn()  # warm-up
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(repeats):
        out = fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return out, (time.perf_counter() - start) / repeats


def profile(fn, depth: int, top: int) -> float:
    """One call of `fn` (a beam search of `depth` steps) under the torch profiler: prints the `top`
    operators by self CPU time (self CUDA time on a GPU) and returns the wall ms per decoding step."""
    fn()
    activities = [torch.profiler.ProfilerActivity.CPU]
    if torch.cuda.is_available():
        activities.append(torch.profiler.ProfilerActivity.CUDA)
    start = time.perf_counter()
    with torch.profiler.profile(activities=activities) as prof:
        fn()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
    wall = time.perf_counter() - start
    key = "self_cuda_time_total" if torch.cuda.is_available() else "self_cpu_time_total"
    print(f"profile of one beam search ({depth} steps, {wall * 1000:.1f} ms under the profiler), top {top} by {key}:")
    print(prof.key_averages().table(sort_by=key, row_limit=top, max_name_column_width=48))
    return round(wall * 1000 / depth, 2)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--beams", type=int, default=20)
    ap.add_argument("--topk", type=int, default=10)
    ap.add_argument("--size", choices=["small", "tiger"], default="small")
    ap.add_argument("--levels", type=int, default=3, help="semantic-ID levels before the dedup level")
    ap.add_argument("--codebook", type=int, default=32, help="codes per level (and dedup codes)")
    ap.add_argument("--extra-tensor-trie", action="store_true", help="also time generate with a tensor-trie callback")
    ap.add_argument("--items", type=int, default=1349)
    ap.add_argument("--history", type=int, default=20)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--profile", type=int, default=0, metavar="N",
                    help="also profile one beam search (torch profiler) and print its top N operators by self time")
    args = ap.parse_args()
    if args.topk > args.beams:
        ap.error("--topk must be <= --beams")
    device = torch.device(args.device)
    rng = np.random.default_rng(args.seed)

    layout, tokens = catalog(rng, args.items, levels=args.levels, codebook=args.codebook, dedup=args.codebook,
                             history=args.history, encoder_input="tokens")
    vocab = layout.sid_vocab
    trie = SidTrie.build(tokens, np.arange(args.items), vocab.size).to(device)
    model = build_policy(layout, policy_size(args.size, dropout_rate=0.0), seed=args.seed).to(device).eval()
    hist = tokens[rng.integers(0, args.items, size=(args.batch, args.history))].reshape(args.batch, -1)
    x = torch.as_tensor(hist, device=device)
    mask = torch.ones_like(x)

    ours, t_ours = timed(lambda: beam_search(model, x, mask, args.beams, vocab.levels, trie=trie), device, args.repeats)

    def generate(allowed):
        def run():
            with torch.no_grad():
                return model.generate(input_ids=x, attention_mask=mask, num_beams=args.beams,
                                      num_return_sequences=args.topk, max_new_tokens=vocab.levels,
                                      prefix_allowed_tokens_fn=allowed, length_penalty=0.0, do_sample=False,
                                      early_stopping=False)
        return run

    hf_out, t_hf = timed(generate(dict_allowed_fn(tokens)), device, max(1, args.repeats // 3))
    _, t_bound = timed(lambda: bare_forward(model, x, mask, args.beams, vocab.levels), device, args.repeats)
    hf_items = trie.lookup(hf_out[:, 1:].reshape(args.batch, args.topk, vocab.levels))
    same = (hf_items == ours.items[:, : args.topk]).float().mean().item()
    result = {
        "device": str(device) if device.type == "cpu" else torch.cuda.get_device_name(device),
        "size": args.size, "levels": args.levels, "codebook": args.codebook, "items": args.items,
        "batch": args.batch, "beams": args.beams, "topk": args.topk, "history": args.history,
        "ours_items_per_s": round(args.batch / t_ours, 2), "dict_generate_items_per_s": round(args.batch / t_hf, 2),
        "bound_items_per_s": round(args.batch / t_bound, 2), "ours_over_dict_generate": round(t_hf / t_ours, 3),
        "ours_over_bound": round(t_bound / t_ours, 3), "same_topk_items": round(same, 4),
    }
    if args.profile:
        result["profile_ms_per_step"] = profile(lambda: beam_search(model, x, mask, args.beams, vocab.levels, trie=trie),
                                                vocab.levels, args.profile)
    if args.extra_tensor_trie:
        _, t_extra = timed(generate(hf_allowed_fn(trie)), device, 1)
        result["extra_tensor_trie_generate_items_per_s"] = round(args.batch / t_extra, 2)
    print(f"ours {t_ours * 1000:.1f} ms/batch, generate with a dict trie {t_hf * 1000:.1f} ms/batch, bound "
          f"{t_bound * 1000:.1f} ms/batch; top-{args.topk} items identical for {same:.1%} of slots")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
