"""Throughput of one RL training step (rollouts + rewards + losses + update) from the
library, and its rollout phase against `transformers` `generate(do_sample=True,
num_return_sequences=G)` on the same model and inputs.

    python benchmarks/rl_step.py --device cpu --size small --batch 64 --group 8
    python benchmarks/rl_step.py --device cuda --size tiger --batch 256 --group 16

bf16 autocast on CUDA (as in training, through Accelerate). The catalog is random: `--items`
items with 3 levels of 256 codes plus a dedup level; the reward is a randomly initialised
SASRec ranker with Platt calibration (throughput does not depend on its weights). samples/s =
training samples per second; rollouts/s = samples x G per second. The last line is one JSON
object.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

import numpy as np
import torch
import yaml

from adagrpo_pipeline.adagrpo.config import AdaGrpoParams
from adagrpo_pipeline.adagrpo.runs import RunSpec
from adagrpo_pipeline.adagrpo.train import setup, train_step
from adagrpo_pipeline.policy.decoding import sample
from adagrpo_pipeline.policy.model import (
    HistoryEncoder,
    PolicyLayout,
    PolicySize,
    build_policy,
)
from adagrpo_pipeline.reward.reward import RewardModel
from adagrpo_pipeline.sasrec.config import SASRecSize
from adagrpo_pipeline.sasrec.model import SASRec
from adagrpo_pipeline.semantic_ids.quantize import add_dedup_level
from adagrpo_pipeline.semantic_ids.trie import SidTrie
from adagrpo_pipeline.semantic_ids.vocab import SidVocab

ROOT = Path(__file__).resolve().parents[1]
SIZES = {"small": ROOT / "conf/base/parameters_sft.yml", "tiger": ROOT / "conf/gpu/parameters_sft.yml"}
log = logging.getLogger("rl_step")


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--size", choices=sorted(SIZES), default="small")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--group", type=int, default=8)
    ap.add_argument("--items", type=int, default=12000)
    ap.add_argument("--history", type=int, default=20)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--variant", default="adagrpo", choices=["adagrpo", "grpo", "sft_continue"])
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    rng = np.random.default_rng(args.seed)

    vocab = SidVocab((256, 256, 256, 16))
    tokens = vocab.encode(add_dedup_level(rng.integers(0, 256, size=(args.items, 3)), 16))
    size = PolicySize(**yaml.safe_load(SIZES[args.size].read_text())["sft"]["model"])
    layout = PolicyLayout(vocab, max_items=args.history)
    encoder = HistoryEncoder(layout, tokens)
    p = AdaGrpoParams(batch_size=args.batch, rollout={"group_size": args.group}, device=args.device, seed=args.seed)
    trie = SidTrie.build(tokens, np.arange(args.items), vocab.size)
    policy = build_policy(layout, size, args.seed)
    torch.manual_seed(args.seed)
    ranker = SASRec(args.items, args.history, SASRecSize())
    reward = RewardModel(ranker, {"method": "platt", "a": 1.0, "b": 0.0}, 0.0, batch_size=4096)
    run = RunSpec(namespace=args.variant, kind=args.variant, seed=args.seed)
    s = setup(policy, encoder, trie, reward, run, p)
    accelerator, device, raw = s.policy.accelerator, s.device, s.policy.raw.eval()
    n_params = sum(t.numel() for t in raw.parameters())

    histories = [rng.integers(0, args.items, size=args.history) for _ in range(args.batch)]
    users = np.arange(args.batch)
    targets = rng.integers(0, args.items, size=args.batch)

    def step(i: int) -> dict:
        return train_step(s, histories, users, targets, i)

    step(0)  # warm-up
    sync(device)
    t0 = time.perf_counter()
    for i in range(1, args.steps + 1):
        row = step(i)
    sync(device)
    step_s = (time.perf_counter() - t0) / args.steps

    x, mask = (t.to(device) for t in encoder(histories, users))
    gen = torch.Generator(device=device).manual_seed(args.seed)

    def ours():
        with accelerator.autocast():
            return sample(raw, x, mask, args.group, vocab.levels, 1.0, generator=gen)

    def hf():
        with accelerator.autocast():
            return raw.generate(input_ids=x, attention_mask=mask, do_sample=True, num_return_sequences=args.group,
                                max_new_tokens=vocab.levels, min_new_tokens=vocab.levels, top_k=0, top_p=1.0,
                                temperature=1.0, decoder_start_token_id=0, eos_token_id=None)

    log.info("train step: %.1f ms (B=%d, G=%d)", 1000 * step_s, args.batch, args.group)
    timings = {}
    for name, fn in (("ours", ours), ("hf", hf)):
        try:
            with torch.no_grad():
                fn()
                sync(device)
                t0 = time.perf_counter()
                for _ in range(args.steps):
                    fn()
                sync(device)
            timings[name] = (time.perf_counter() - t0) / args.steps
        except Exception as err:  # e.g. a transformers version whose generate() refuses these arguments
            log.warning("%s rollouts failed: %r", name, err)
            timings[name] = float("nan")

    result = {
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "precision": "bf16" if device.type == "cuda" else "fp32", "size": args.size, "params": n_params,
        "batch": args.batch, "group": args.group, "items": args.items, "variant": args.variant,
        "step_s": round(step_s, 4), "samples_per_s": round(args.batch / step_s, 1),
        "rollouts_per_s": round(args.batch * args.group / step_s, 1),
        "rollout_ours_s": round(timings["ours"], 4), "rollout_hf_generate_s": round(timings["hf"], 4),
        "rollout_speedup": round(timings["hf"] / timings["ours"], 2), "last_step_loss": row["loss"],
        "last_step_invalid_share": row["invalid_share"],
    }
    log.info("%s %s, %d params, B=%d, G=%d: %.1f ms/step = %.1f samples/s, %.1f rollouts/s; rollouts alone: "
             "ours %.1f ms vs transformers generate %.1f ms (%.2fx)", result["device"], result["precision"], n_params,
             args.batch, args.group, 1000 * step_s, result["samples_per_s"], result["rollouts_per_s"],
             1000 * timings["ours"], 1000 * timings["hf"], result["rollout_speedup"])
    print(json.dumps(result))


if __name__ == "__main__":
    main()
