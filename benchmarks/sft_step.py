"""The SFT loop's step against the bare step of the same `T5ForConditionalGeneration`.

    python benchmarks/sft_step.py --device cpu --size small          # the main job's policy and batch
    python benchmarks/sft_step.py --device cuda --size tiger --batch 256

- ours: `policy.sft.train_sft`, the real loop (the seeded schedule picks the rows, the samples
  become tensors, forward, backward, all-reduce hook, clipping, AdamW, the schedule, the logged
  loss). Its cost per step is the difference between a run of `--steps` + `--short` steps and
  one of `--short` steps, everything else (set-up, the data's fingerprint, one validation, the
  state written at the end) being the same in both;
- bare: the model's forward with `labels`, backward and `torch.optim.AdamW` (PyTorch's default,
  foreach) on one batch already on the device: what a user would write around `transformers`,
  and the work no loop can avoid.
bf16 autocast on CUDA (both), fp32 on CPU. The loop's phases (`sft.batch`, `sft.forward`,
`train.backward`, `train.optimiser`) are read from a torch profiler run of `--steps` steps.
Random catalog (`--items`, 3 levels of 256 codes + dedup) and histories. Both are measured
`--repeats` times, alternating; the medians are reported. The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import logging
import tempfile
from contextlib import nullcontext

import numpy as np
import torch
from common import catalog, phase_seconds, policy_conf, policy_size, samples_frame, seconds

from adagrpo_pipeline.policy.config import SftParams
from adagrpo_pipeline.policy.model import HistoryEncoder, build_policy, encoder_inputs
from adagrpo_pipeline.policy.sft import train_sft
from adagrpo_pipeline.semantic_ids.trie import SidTrie
from adagrpo_pipeline.training import make_accelerator

PHASES = ("sft.batch", "sft.forward", "train.backward", "train.optimiser")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--size", choices=["small", "tiger"], default="small")
    ap.add_argument("--batch", type=int, default=None, help="default: the size's configured batch_size")
    ap.add_argument("--items", type=int, default=1682)
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--short", type=int, default=5)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    conf = policy_conf(a.size)
    batch = a.batch or conf["batch_size"]
    size = policy_size(a.size)
    rng = np.random.default_rng(a.seed)
    layout, tokens = catalog(rng, a.items, history=conf["max_items"], encoder_input=conf.get("encoder_input", "items"))
    encoder = HistoryEncoder(layout, tokens)
    trie = SidTrie.build(tokens, np.arange(a.items), layout.sid_vocab.size)
    train = samples_frame(rng, batch * (a.steps + a.short), a.items, layout.max_items, varied=True)
    valid = samples_frame(rng, 16, a.items, layout.max_items, varied=True)

    device = make_accelerator(a.device).device

    def params(steps: int, state_dir: str) -> SftParams:
        return SftParams(model=size, max_items=layout.max_items, encoder_input=layout.encoder_input, batch_size=batch,
                         max_steps=steps, eval_every=steps, checkpoint_every=steps, warmup_steps=1, eval_users=16,
                         eval_beams=10, device=a.device, state_dir=state_dir, seed=a.seed)

    def loop(steps: int) -> float:
        with tempfile.TemporaryDirectory() as tmp:
            model = build_policy(layout, size, a.seed)
            return seconds(lambda: train_sft(model, encoder, train, valid, trie, params(steps, tmp)), device)

    def bare(device: torch.device) -> float:
        model = build_policy(layout, size, a.seed).to(device).train()
        opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.01)
        x, mask = encoder(train["history"].to_list()[:batch], train["user_id"].to_numpy()[:batch])
        x, mask, labels = x.to(device), mask.to(device), encoder.targets(train["target"].to_numpy()[:batch]).to(device)
        autocast = torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else nullcontext()

        def steps():
            for _ in range(a.steps):
                with autocast:
                    loss = model(**encoder_inputs(model, x), attention_mask=mask, labels=labels).loss
                loss.backward()
                opt.step()
                opt.zero_grad(set_to_none=True)
        steps()  # warm-up
        return seconds(steps, device)

    ours, bare_runs = [], []
    for _ in range(a.repeats):
        ours.append((loop(a.short + a.steps) - loop(a.short)) / a.steps)
        bare_runs.append(bare(device) / a.steps)
        print(json.dumps({"ours_step_ms": round(ours[-1] * 1000, 2), "bare_step_ms": round(bare_runs[-1] * 1000, 2)}),
              flush=True)
    ours_s, bare_s = float(np.median(ours)), float(np.median(bare_runs))
    with tempfile.TemporaryDirectory() as tmp:
        model = build_policy(layout, size, a.seed)
        phases = phase_seconds(lambda: train_sft(model, encoder, train, valid, trie, params(a.steps, tmp)), device, PHASES)
    result = {
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "precision": "bf16" if device.type == "cuda" else "fp32", "size": a.size, "batch": batch,
        "encoder_input": layout.encoder_input, "steps": a.steps,
        "ours_samples_per_s": round(batch / ours_s, 1), "bare_samples_per_s": round(batch / bare_s, 1),
        "ours_over_bare": round(bare_s / ours_s, 3),
        "phase_ms_per_step": {k: round(1000 * v / a.steps, 2) for k, v in phases.items() if k != "total"},
    }
    logging.getLogger("sft_step").warning(
        "SFT step, batch %d: ours %.1f ms (%.0f samples/s), bare %.1f ms (%.0f samples/s): %.3f of the bare step",
        batch, 1000 * ours_s, batch / ours_s, 1000 * bare_s, batch / bare_s, bare_s / ours_s)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
