"""Constrained beam search: our engine vs `transformers` `generate(num_beams=…,
prefix_allowed_tokens_fn=…)`, same model (random weights), same inputs, same trie.

    python benchmarks/decoding.py --device cpu --batch 16 --size small
    python benchmarks/decoding.py --device cuda --batch 1024 --size tiger --beams 20 --topk 10

The model sizes are read from conf/base (small) and conf/gpu (tiger) `parameters_sft.yml`.
"items/s" = inputs (users) for which a top-k list is produced per second. The catalog is a
random one of `--items` items with 3 levels of 32 codes plus a dedup level. Both engines are
timed after one warm-up call; the script checks they return the same top-k items and prints,
last, one JSON object with ours_items_per_s, hf_items_per_s, speedup and device.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
import yaml

from adagrpo_pipeline.policy.decoding import beam_search
from adagrpo_pipeline.policy.model import PolicyLayout, PolicySize, build_policy
from adagrpo_pipeline.semantic_ids.quantize import add_dedup_level
from adagrpo_pipeline.semantic_ids.trie import SidTrie
from adagrpo_pipeline.semantic_ids.vocab import SidVocab

ROOT = Path(__file__).resolve().parents[1]
SIZES = {"small": ROOT / "conf/base/parameters_sft.yml", "tiger": ROOT / "conf/gpu/parameters_sft.yml"}


def hf_allowed_fn(trie: SidTrie):
    def allowed(batch_id: int, ids: torch.Tensor) -> list[int]:
        node = trie.walk(ids[1:][None, :])[0] if len(ids) > 1 else torch.tensor(0, device=ids.device)
        return torch.nonzero(trie.allowed_mask(node[None])[0]).ravel().tolist()
    return allowed


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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--beams", type=int, default=20)
    ap.add_argument("--topk", type=int, default=10)
    ap.add_argument("--size", choices=sorted(SIZES), default="small")
    ap.add_argument("--items", type=int, default=1349)
    ap.add_argument("--history", type=int, default=20)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    if args.topk > args.beams:
        ap.error("--topk must be <= --beams")
    device = torch.device(args.device)
    rng = np.random.default_rng(args.seed)

    vocab = SidVocab((32, 32, 32, 32))
    codes = add_dedup_level(rng.integers(0, 32, size=(args.items, 3)), 32)
    tokens = vocab.encode(codes)
    trie = SidTrie.build(tokens, np.arange(args.items), vocab.size).to(device)
    size = PolicySize(**yaml.safe_load(SIZES[args.size].read_text())["sft"]["model"])
    layout = PolicyLayout(vocab, max_items=args.history)
    model = build_policy(layout, size.model_copy(update={"dropout_rate": 0.0}), seed=args.seed).to(device).eval()
    hist = tokens[rng.integers(0, args.items, size=(args.batch, args.history))].reshape(args.batch, -1)
    x = torch.as_tensor(hist, device=device)
    mask = torch.ones_like(x)

    ours, t_ours = timed(lambda: beam_search(model, x, mask, args.beams, vocab.levels, trie=trie), device, args.repeats)
    allowed = hf_allowed_fn(trie)

    def hf():
        with torch.no_grad():
            return model.generate(input_ids=x, attention_mask=mask, num_beams=args.beams, num_return_sequences=args.topk,
                                  max_new_tokens=vocab.levels, prefix_allowed_tokens_fn=allowed, length_penalty=0.0,
                                  do_sample=False, early_stopping=False)

    hf_out, t_hf = timed(hf, device, max(1, args.repeats // 3))
    hf_items = trie.lookup(hf_out[:, 1:].reshape(args.batch, args.topk, vocab.levels))
    same = (hf_items == ours.items[:, : args.topk]).float().mean().item()
    result = {
        "device": str(device) if device.type == "cpu" else torch.cuda.get_device_name(device),
        "size": args.size, "batch": args.batch, "beams": args.beams, "topk": args.topk,
        "ours_items_per_s": round(args.batch / t_ours, 2), "hf_items_per_s": round(args.batch / t_hf, 2),
        "speedup": round(t_hf / t_ours, 2), "same_topk_items": round(same, 4),
    }
    print(f"ours {t_ours * 1000:.1f} ms/batch, transformers generate {t_hf * 1000:.1f} ms/batch, "
          f"top-{args.topk} items identical for {same:.1%} of slots")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
