"""Throughput of the three training loops on one device (the 1-GPU path: Accelerate, bf16 on
CUDA), each through the library's own entry point (`train_sft`, `train_ranker`, `train_rl`:
batches from the seeded schedule, the update, logging, the state written at the last step),
against the bound: the bare step of the same model on batches already on the device
(forward, backward, clip, AdamW; for RL the library's `train_step` called in a loop).

    python benchmarks/loops.py --device cuda --size tiger      # conf/gpu's policy
    python benchmarks/loops.py --device cpu --size small --steps 5 --batch 32 --group 4

Random catalog (`--items`, 3 levels of 256 codes + dedup), random histories, a randomly
initialised ranker (throughput does not depend on the weights). Each loop's validation is timed
on its own and left out of samples/s; the loop's set-up (device, optimiser, the data's
fingerprint) and its state written at the last step are in. A short warm-up (the first CUDA
kernels) runs before anything is timed, and the set runs `--repeats` times (the last is
reported: the first pays for the kernels each path uses first). The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import logging
import tempfile
from pathlib import Path

import numpy as np
import torch
from common import catalog, policy_conf, samples_frame, timed

from adagrpo_pipeline.adagrpo.config import AdaGrpoParams
from adagrpo_pipeline.adagrpo.runs import RunSpec
from adagrpo_pipeline.adagrpo.train import setup, train_rl, train_step
from adagrpo_pipeline.policy.config import SftParams
from adagrpo_pipeline.policy.evaluation import validation_metrics
from adagrpo_pipeline.policy.model import HistoryEncoder, PolicySize, build_policy, encoder_inputs
from adagrpo_pipeline.policy.sft import train_sft
from adagrpo_pipeline.reward.config import RankerTrainParams
from adagrpo_pipeline.reward.data import EventIndex, Requests
from adagrpo_pipeline.reward.reward import RewardModel
from adagrpo_pipeline.reward.train import _batch, score_requests, train_ranker
from adagrpo_pipeline.sasrec.config import SASRecSize
from adagrpo_pipeline.sasrec.model import SASRec
from adagrpo_pipeline.semantic_ids.trie import SidTrie
from adagrpo_pipeline.training import make_accelerator, prepare_training

log = logging.getLogger("loops")


def bench_sft(a, device, size, layout, encoder, trie, rng) -> dict:
    train = samples_frame(rng, a.batch * a.steps, a.items, a.history)
    valid = samples_frame(rng, 64, a.items, a.history)
    with tempfile.TemporaryDirectory() as tmp:
        p = SftParams(model=size, max_items=a.history, encoder_input=layout.encoder_input, batch_size=a.batch,
                      max_steps=a.steps, eval_every=a.steps, checkpoint_every=a.steps, warmup_steps=1, eval_users=64,
                      eval_beams=20, device=a.device, state_dir=tmp)
        model = build_policy(layout, size, 0)
        seconds, res = timed(lambda: train_sft(model, encoder, train, valid, trie, p), device)
        eval_s, _ = timed(lambda: validation_metrics(res.model, encoder, trie, valid, None, 20, device), device)
    loop_s = seconds - eval_s
    # the bound: the same step on one batch already on the device
    t = prepare_training(build_policy(layout, size, 0), a.device, 1e-3, 0.01, 1.0)
    x, mask = encoder(train["history"].to_list()[: a.batch], train["user_id"].to_numpy()[: a.batch])
    x, mask, labels = x.to(device), mask.to(device), encoder.targets(train["target"].to_numpy()[: a.batch]).to(device)

    def bare():
        for _ in range(a.steps):
            with t.accelerator.autocast():
                loss = t.model(**encoder_inputs(t.model, x), attention_mask=mask, labels=labels).loss
            t.update(loss)

    bound_s, _ = timed(bare, device)
    return {"samples_per_s": a.batch * a.steps / loop_s, "bound_samples_per_s": a.batch * a.steps / bound_s,
            "loop_over_bound": loop_s / bound_s, "validation_s": eval_s}


def bench_ranker(a, device, rng) -> dict:
    n_users, per_user, slate = 4000, 40, 10
    items = rng.integers(0, a.items, n_users * per_user)
    starts = np.arange(0, n_users * per_user, per_user)
    events = EventIndex(items, np.arange(len(items)), starts, starts + per_user)
    n = a.batch * a.steps

    def requests(m: int) -> Requests:
        return Requests(users=rng.integers(0, n_users, m), cuts=rng.integers(1, per_user, m),
                        slates=rng.integers(0, a.items, (m, slate)), clicked=(rng.random((m, slate)) < 0.1),
                        split=np.full(m, "train"))

    train, valid = requests(n), requests(1024)
    with tempfile.TemporaryDirectory() as tmp:
        p = RankerTrainParams(batch_size=a.batch, max_steps=a.steps, eval_every=a.steps, checkpoint_every=a.steps,
                              device=a.device, state_dir=tmp, max_history=a.history)
        seconds, res = timed(lambda: train_ranker(a.items, events, train, valid, p), device)
    eval_s, _ = timed(lambda: score_requests(res.model, events, valid, 1024, device), device)
    seconds -= eval_s
    model = res.model.train()
    t = prepare_training(model, a.device, 1e-3, 0.0, 1.0)
    tokens, lengths, cand = _batch(events, train, np.arange(a.batch), a.history, device)
    labels = torch.as_tensor(train.clicked[: a.batch], dtype=torch.float32, device=device)

    def bare():
        for _ in range(a.steps):
            with t.accelerator.autocast():
                logits = t.model(tokens, lengths, cand).float()
            t.update(torch.nn.functional.binary_cross_entropy_with_logits(logits, labels))

    bound_s, _ = timed(bare, device)
    return {"samples_per_s": n / seconds, "bound_samples_per_s": n / bound_s, "loop_over_bound": seconds / bound_s,
            "validation_s": eval_s}


def bench_rl(a, device, size, layout, encoder, trie, rng) -> dict:
    train = samples_frame(rng, a.batch * a.rl_steps, a.items, a.history)
    valid = samples_frame(rng, 64, a.items, a.history)
    torch.manual_seed(0)
    reward = RewardModel(SASRec(a.items, a.history, SASRecSize()), {"method": "platt", "a": 1.0, "b": 0.0}, 0.0,
                         batch_size=4096)
    run = RunSpec(namespace="adagrpo", kind="adagrpo", seed=0)
    p = AdaGrpoParams(batch_size=a.batch, rollout={"group_size": a.group}, device=a.device, max_steps=a.rl_steps,
                      eval_every=a.rl_steps, checkpoint_every=a.rl_steps, eval_users=64, eval_beams=20, warmup_steps=1)
    with tempfile.TemporaryDirectory() as tmp:
        seconds, res = timed(lambda: train_rl(build_policy(layout, size, 0), encoder, train, valid, trie, reward, run, p,
                                              Path(tmp)), device)
    evals = 2  # step 0 and the last step
    eval_s, _ = timed(lambda: validation_metrics(res.model, encoder, trie.to(device), valid, None, 20, device, reward),
                      device)
    loop_s = seconds - evals * eval_s
    s = setup(build_policy(layout, size, 0), encoder, trie, reward, run, p)
    rows = [train.iloc[i * a.batch : (i + 1) * a.batch] for i in range(a.rl_steps)]

    def bare():
        for i, b in enumerate(rows):
            train_step(s, b["history"].to_list(), b["user_id"].to_numpy(), b["target"].to_numpy(), i)

    bound_s, _ = timed(bare, device)
    n = a.batch * a.rl_steps
    return {"samples_per_s": n / loop_s, "rollouts_per_s": n * a.group / loop_s, "bound_samples_per_s": n / bound_s,
            "loop_over_bound": loop_s / bound_s, "validation_s": eval_s}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--size", choices=["small", "tiger"], default="small")
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--group", type=int, default=16)
    ap.add_argument("--items", type=int, default=12000)
    ap.add_argument("--history", type=int, default=20)
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--rl-steps", type=int, default=10)
    ap.add_argument("--only", nargs="*", default=["sft", "ranker", "rl"])
    ap.add_argument("--repeats", type=int, default=2, help="the whole set this many times; the last is reported")
    a = ap.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    rng = np.random.default_rng(0)
    device = make_accelerator(a.device).device
    sft_conf = policy_conf(a.size)
    layout, tokens = catalog(rng, a.items, history=a.history, encoder_input=sft_conf.get("encoder_input", "items"))
    size = PolicySize(**sft_conf["model"])
    encoder = HistoryEncoder(layout, tokens)
    trie = SidTrie.build(tokens, np.arange(a.items), layout.sid_vocab.size)
    warm = build_policy(layout, size, 0).to(device)  # the first CUDA kernels, before any timing
    x, mask = encoder([np.arange(a.history)] * 8, np.arange(8))
    with make_accelerator(a.device).autocast():
        warm(**encoder_inputs(warm, x.to(device)), attention_mask=mask.to(device),
             labels=encoder.targets(np.arange(8)).to(device)).loss.backward()
    out = {"device": str(device), "gpu": torch.cuda.get_device_name(0) if device.type == "cuda" else None,
           "size": a.size, "batch": a.batch, "group": a.group, "items": a.items}
    for rep in range(a.repeats):  # the figures of the last repeat (the first pays for first-use kernels)
        if "sft" in a.only:
            out["sft"] = bench_sft(a, device, size, layout, encoder, trie, rng)
            print(rep, "sft", json.dumps(out["sft"]), flush=True)
        if "ranker" in a.only:
            out["ranker"] = bench_ranker(a, device, rng)
            print(rep, "ranker", json.dumps(out["ranker"]), flush=True)
        if "rl" in a.only:
            out["rl"] = bench_rl(a, device, size, layout, encoder, trie, rng)
            print(rep, "rl", json.dumps(out["rl"]), flush=True)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
