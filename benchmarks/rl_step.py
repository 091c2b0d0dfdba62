"""One RL training step (`adagrpo.train.train_step`) phase by phase, each phase against its
bound, and the rollouts against `transformers` `generate` sampling.

    python benchmarks/rl_step.py --device cpu --size small                  # the main job's policy, B=256, G=8
    python benchmarks/rl_step.py --device cuda --size tiger --batch 256 --group 16

The step's settings are conf/base `parameters_adagrpo.yml` (B, G, unconstrained sampling, the
dropout NLL pass) with `--batch`/`--group` overriding. The phases are the library's profiler
labels: `rl.rollouts` (G sequences per sample), `rl.reward` (the ranker scores y* and the
rollouts), `rl.teacher_forced` (π_θ's and π_ref's teacher-forced passes and the loss terms),
`rl.diagnostics` (d_pol, d_rew, the gate), `train.backward`, `train.optimiser` (all-reduce
hook, clipping, AdamW, the schedule). The bound of each, on the same batch and model:
- rollouts: the forward work of the decoding, the encoder once and L cached decoder steps over
  B × G rows as `transformers` runs them (`decoding.bare_forward`);
- reward: the ranker's forward on the packed histories and candidates already on the device;
- teacher_forced: the model's forward with the encoder once per input and the decoder over the
  B × (1 + G) sequences, log-softmax and gather, for π_θ (with the dropout pass over y*) and π_ref;
- diagnostics: two comparisons and sums over (B, G) scores (the target's rank by policy and by reward);
- backward: the backward of that bare forward's loss (bare forward + backward, minus the forward);
- optimiser: `torch.optim.AdamW.step` and `zero_grad` alone.
Random catalog (`--items`, 3 levels of 256 codes + dedup), random histories and a randomly
initialised SASRec reward with Platt calibration (throughput does not depend on the weights).
bf16 autocast on CUDA; on CUDA run with CUDA_LAUNCH_BLOCKING=1 for the breakdown (see
`common.phase_seconds`). The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import itertools
import json
import logging

import numpy as np
import torch
import yaml
from common import ROOT, catalog, median_seconds, phase_seconds, policy_size
from decoding import bare_forward
from transformers.modeling_outputs import BaseModelOutput

from adagrpo_pipeline.adagrpo.config import AdaGrpoParams
from adagrpo_pipeline.adagrpo.runs import RunSpec
from adagrpo_pipeline.adagrpo.train import setup, train_step
from adagrpo_pipeline.policy.decoding import sample
from adagrpo_pipeline.policy.model import HistoryEncoder, build_policy, encoder_inputs
from adagrpo_pipeline.reward.reward import RewardModel
from adagrpo_pipeline.sasrec.config import SASRecSize
from adagrpo_pipeline.sasrec.model import SASRec, pack_histories
from adagrpo_pipeline.semantic_ids.trie import SidTrie

log = logging.getLogger("rl_step")
PHASES = ("rl.rollouts", "rl.reward", "rl.teacher_forced", "rl.diagnostics", "train.backward", "train.optimiser")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--size", choices=["small", "tiger"], default="small")
    ap.add_argument("--batch", type=int, default=None, help="default: conf/base adagrpo.batch_size")
    ap.add_argument("--group", type=int, default=None, help="default: conf/base adagrpo.rollout.group_size")
    ap.add_argument("--items", type=int, default=1682)
    ap.add_argument("--history", type=int, default=20)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--repeats", type=int, default=3, help="bound timings: the median of this many")
    ap.add_argument("--variant", default="adagrpo", choices=["adagrpo", "grpo", "sft_continue"])
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    conf = yaml.safe_load((ROOT / "conf/base/parameters_adagrpo.yml").read_text())["adagrpo"]
    rollout_conf = {**conf["rollout"], **({"group_size": a.group} if a.group else {})}
    p = AdaGrpoParams(**{**conf, "rollout": rollout_conf, "batch_size": a.batch or conf["batch_size"],
                         "device": a.device, "seed": a.seed})
    batch, group = p.batch_size, p.rollout.group_size
    rng = np.random.default_rng(a.seed)
    layout, tokens = catalog(rng, a.items, history=a.history)
    depth = layout.depth
    size = policy_size(a.size)
    encoder = HistoryEncoder(layout, tokens)
    trie = SidTrie.build(tokens, np.arange(a.items), layout.sid_vocab.size)
    torch.manual_seed(a.seed)
    reward = RewardModel(SASRec(a.items, a.history, SASRecSize()), {"method": "platt", "a": 1.0, "b": 0.0}, 0.0,
                         batch_size=4096)
    run = RunSpec(namespace=a.variant, kind=a.variant, seed=a.seed)
    s = setup(build_policy(layout, size, a.seed), encoder, trie, reward, run, p)
    accelerator, device, raw = s.policy.accelerator, s.device, s.policy.model
    autocast = accelerator.autocast
    histories = [rng.integers(0, a.items, size=rng.integers(1, a.history + 1)) for _ in range(batch)]
    users, targets = np.arange(batch), rng.integers(0, a.items, size=batch)

    # ours: the whole step, then its phases under the profiler
    steps = itertools.count()
    row = train_step(s, histories, users, targets, next(steps))  # warm-up
    step_s = median_seconds(lambda: train_step(s, histories, users, targets, next(steps)), device, a.steps)
    phases = phase_seconds(lambda: [train_step(s, histories, users, targets, next(steps)) for _ in range(a.steps)],
                           device, PHASES)
    ours = {k.split(".")[1]: v / a.steps for k, v in phases.items() if k != "total"}

    # the bounds, same batch and model
    x, mask = (t.to(device) for t in encoder(histories, users))
    model, ref = raw, s.ref
    model.eval()
    bound = {}
    with torch.no_grad(), autocast():
        bound["rollouts"] = median_seconds(lambda: bare_forward(model, x, mask, group, depth), device, a.repeats)
    packed, lengths = (t.to(device) for t in pack_histories(histories, a.history))
    cand = torch.as_tensor(rng.integers(0, a.items, size=(batch, 1 + group)), device=device)
    ranker = reward.ranker.to(device).eval()
    with torch.no_grad(), autocast():
        bound["reward"] = median_seconds(lambda: ranker(packed, lengths, cand), device, a.repeats)
    seqs = torch.as_tensor(tokens[rng.integers(0, a.items, size=(batch, 1 + group))], device=device)

    def forward(net, sequences: torch.Tensor):
        """Σ log π(sequences | x), (B, k, L) sequences: the encoder once, the decoder over B·k rows."""
        k = sequences.shape[1]
        flat = sequences.reshape(-1, depth)
        enc = net.get_encoder()(**encoder_inputs(net, x), attention_mask=mask).last_hidden_state
        out = net(encoder_outputs=BaseModelOutput(last_hidden_state=enc.repeat_interleave(k, 0)),
                  attention_mask=mask.repeat_interleave(k, 0),
                  decoder_input_ids=torch.cat([torch.zeros_like(flat[:, :1]), flat[:, :-1]], dim=1), use_cache=False)
        return torch.log_softmax(out.logits.float(), -1).gather(-1, flat[..., None]).sum()

    def teacher_forced():
        with autocast():
            model.eval()
            loss = forward(model, seqs)
            if p.dropout:
                model.train()
                loss = loss + forward(model, seqs[:, :1])
                model.eval()
            with torch.no_grad():
                forward(ref, seqs)
        return loss

    bound["teacher_forced"] = median_seconds(teacher_forced, device, a.repeats)
    scores = torch.randn(batch, 1 + group, device=device)
    rewards = torch.rand(batch, 1 + group, device=device)
    bound["diagnostics"] = median_seconds(
        lambda: ((scores[:, 1:] > scores[:, :1]).sum(1), (rewards[:, 1:] > rewards[:, :1]).sum(1)), device, a.repeats)
    forward_backward = median_seconds(lambda: teacher_forced().backward(), device, a.repeats)
    bound["backward"] = max(forward_backward - bound["teacher_forced"], 0.0)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    teacher_forced().backward()

    def adamw():
        opt.step()
        opt.zero_grad(set_to_none=False)
    bound["optimiser"] = median_seconds(adamw, device, a.repeats)
    model.zero_grad(set_to_none=True)

    # the rollouts against transformers' sampling
    gen = torch.Generator(device=device).manual_seed(a.seed)
    model.eval()

    def ours_rollouts():
        with torch.no_grad(), autocast():
            return sample(model, x, mask, group, depth, p.rollout.temperature, generator=gen)

    def hf_rollouts():
        with torch.no_grad(), autocast():
            return model.generate(**encoder_inputs(model, x), attention_mask=mask, do_sample=True,
                                  num_return_sequences=group, max_new_tokens=depth, min_new_tokens=depth, top_k=0,
                                  top_p=1.0, temperature=p.rollout.temperature, decoder_start_token_id=0,
                                  eos_token_id=None)

    t_ours, t_hf = median_seconds(ours_rollouts, device, a.repeats), median_seconds(hf_rollouts, device, a.repeats)
    result = {
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "precision": "bf16" if device.type == "cuda" else "fp32", "size": a.size, "batch": batch, "group": group,
        "items": a.items, "variant": a.variant, "dropout_pass": p.dropout, "constrained": p.rollout.constrained,
        "step_s": round(step_s, 4), "samples_per_s": round(batch / step_s, 1),
        "rollouts_per_s": round(batch * group / step_s, 1),
        "phase_ms": {k: round(1000 * v, 2) for k, v in ours.items()},
        "bound_ms": {k: round(1000 * v, 2) for k, v in bound.items()},
        "phase_over_bound": {k: round(bound[k] / ours[k], 3) if ours[k] == ours[k] and ours[k] > 0 else None
                             for k in bound},
        "step_bound_s": round(sum(bound.values()), 4), "step_over_bound": round(sum(bound.values()) / step_s, 3),
        "rollouts_ours_s": round(t_ours, 4), "rollouts_hf_generate_s": round(t_hf, 4),
        "rollouts_over_hf_generate": round(t_hf / t_ours, 2), "last_step_loss": round(row["loss"], 5),
    }
    for k in bound:
        log.info("%-15s ours %8.1f ms   bound %8.1f ms   bound/ours %.3f", k, 1000 * ours[k], 1000 * bound[k],
                 bound[k] / ours[k] if ours[k] > 0 else float("nan"))
    log.info("step %.1f ms = %.1f samples/s (B=%d, G=%d); sum of the bounds %.1f ms (%.3f of the step); rollouts "
             "alone: ours %.1f ms, transformers generate %.1f ms (%.2fx)", 1000 * step_s, batch / step_s, batch, group,
             1000 * sum(bound.values()), sum(bound.values()) / step_s, 1000 * t_ours, 1000 * t_hf, t_hf / t_ours)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
