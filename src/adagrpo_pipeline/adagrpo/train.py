"""The RL stage (arXiv 2606.08480; docs/architecture.md, "The algorithm") on HF Accelerate, in
the project's training-loop scaffold.

One step = one batch of B training samples:
1. rollouts: G candidates per sample from π_θ (sampling or beam, constrained or not);
2. rewards R(x, y) of the candidates (invalid → `invalid_reward`) and of y*;
3. one teacher-forced decoder pass over {y*} ∪ rollouts for π_θ (and, without gradient, for
   π_ref): log π(y*|x) gives the NLL and d_pol, the rollouts' token log-probabilities give the
   clipped ratio objective and the k3 KL;
4. `inner_steps` updates on that rollout batch (π_old = π_θ at rollout time).

The optimiser regime continues SFT's (docs/architecture.md: `sft_continue` must not lose to SFT):
AdamW with a linear warm-up (fresh Adam moments: the SFT checkpoint keeps weights only) to `lr`,
then constant or cosine decay to 0; with `dropout`, the NLL of y* is computed with the policy's
dropout on, as SFT trained it (one extra decoder pass over y* alone). The GRPO term, the KL and
the diagnostics always use the network without dropout, the one that drew the rollouts, so ρ = 1
at the first inner step (dropout there would put noise in every ratio and clip it away: on tiny
models it stopped GRPO from learning). Batches come from a (seed, epoch) permutation and the
rollout and random-gate RNGs are seeded by (seed, step): a resumed run is identical to an
uninterrupted one. Step 0 (the starting policy) is the first checkpoint of every run.

With several processes (`training.distributed`) each rank draws, rewards and diagnoses the
rollouts of its part of the global batch, with the random numbers one process would draw for
those rows (the rollout noise and the random gate are drawn for the whole batch); the admitted
share that `random_gate` and `mix_matched` use is the global batch's.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch.profiler import record_function
from transformers import get_constant_schedule_with_warmup, get_cosine_schedule_with_warmup

from adagrpo_pipeline.policy.evaluation import validation_metrics
from adagrpo_pipeline.policy.model import HistoryEncoder
from adagrpo_pipeline.reward.reward import RewardModel
from adagrpo_pipeline.semantic_ids.trie import SidTrie
from adagrpo_pipeline.training import (
    Part,
    Schedule,
    Trainee,
    TrainingLoop,
    cpu_state_dict,
    fingerprint,
    prepare_training,
    validation_subset,
)
from adagrpo_pipeline.training.loop import LogFn, on_processes
from adagrpo_pipeline.training.samples import ParquetSamples, Samples, as_samples

from .config import AdaGrpoParams
from .diagnostics import Diagnostics, diagnose
from .losses import group_advantages, grpo_loss_per_sample, sample_weights, variant_loss
from .rollouts import Rollouts, encode, rescore, rollout, rollout_generator, sequence_logprobs
from .runs import RunSpec


@dataclass
class RlSetup:
    """Everything one RL step needs, built once per run."""

    policy: Trainee  # π_θ, its optimiser and update rule
    ref: torch.nn.Module  # π_ref: the frozen starting (SFT) policy
    encoder: HistoryEncoder
    trie: SidTrie
    reward: RewardModel
    run: RunSpec
    params: AdaGrpoParams
    gate_reward: RewardModel | None = None  # `oracle_gate`: the reward whose ranks give d_rew (the oracle)

    @property
    def device(self) -> torch.device:
        return self.policy.device


@dataclass
class RlResult:
    model: torch.nn.Module
    history: pd.DataFrame  # one row per step (+ valid_* columns at evaluation steps; step 0 = the start)
    checkpoints: dict[int, Path]  # step -> weights file, written once by the loop
    resumed_from: int


def step_losses(s: RlSetup, x: torch.Tensor, mask: torch.Tensor, ro: Rollouts, logp_old: torch.Tensor | None,
                gate_rng: torch.Generator, gate_ro: Rollouts | None = None, part: Part | None = None
                ) -> tuple[torch.Tensor, dict[str, torch.Tensor], Diagnostics, torch.Tensor]:
    """Loss of one update on a rollout batch, its per-sample terms, the diagnostics, and π_θ's
    log-probabilities without dropout (the π_old of the later inner steps when `logp_old` is None).
    `gate_ro`: the same rollouts scored by the gate's own reward (`oracle_gate`), for d_rew.
    `part`: these samples are this rank's part of the global batch (None: the whole batch)."""
    p, model = s.params, s.policy.model
    s.policy.model.eval()  # the GRPO term on the network that drew the rollouts: ρ = 1 at the first inner step
    with record_function("rl.teacher_forced"):
        logp = sequence_logprobs(model, encode(model, x, mask), mask, ro.seqs)
        if p.dropout:  # the NLL of y* with the policy's dropout, as SFT trained it
            s.policy.model.train()
            nll = -sequence_logprobs(model, encode(model, x, mask), mask, ro.seqs[:, :1])[:, 0].mean(dim=-1)
            s.policy.model.eval()
        else:
            nll = -logp[:, 0].mean(dim=-1)  # per-token NLL of y*, as in SFT
        with torch.no_grad():
            logp_ref = sequence_logprobs(s.ref, encode(s.ref, x, mask), mask, ro.seqs)
        old = logp.detach() if logp_old is None else logp_old
        adv = group_advantages(ro.rewards, p.adv_eps)
        grpo, kl = grpo_loss_per_sample(logp[:, 1:], old[:, 1:], logp_ref[:, 1:], adv, p.clip_eps, p.beta)
    with record_function("rl.diagnostics"):
        diag = diagnose(ro if gate_ro is None else gate_ro, old, s.encoder.layout.vocab_size, p.k_pol, p.k_rew)
    share, span, total = None, None, None
    if part is not None:
        span, total = part.span, part.total
        if s.run.variant.kind in ("random_gate", "mix_matched"):  # the admitted share of the global batch
            share = s.policy.ranks.share(diag.admitted.sum(), len(diag.admitted))
    weight = sample_weights(s.run.variant, diag.admitted, gate_rng, share, span, total)
    loss = variant_loss(s.run.variant, nll, grpo, weight, p.lam)
    terms = {"nll": nll.detach(), "grpo_loss": grpo.detach(), "kl": kl.detach(), "weight": weight.detach()}
    return loss, terms, diag, old


def train_step(s: RlSetup, histories: list, users: np.ndarray, targets: np.ndarray, step: int,
               part: Part | None = None) -> dict[str, float]:
    """One RL step on one batch (module docstring, 1-4); returns the step's logged values (means
    over these samples). `part`: the samples are this rank's part of the global batch. Its phases
    carry torch profiler labels: `rl.rollouts`, `rl.reward`, `rl.teacher_forced` (π_θ and π_ref
    and the losses), `rl.diagnostics`, `train.backward`, `train.optimiser`."""
    x, mask = (t.to(s.device) for t in s.encoder(histories, users))
    target_tokens = s.encoder.targets(targets).to(s.device)
    s.policy.model.eval()
    with s.policy.accelerator.autocast():
        ro = rollout(s.policy.model, x, mask, target_tokens, targets, histories, s.trie, s.reward, s.params.rollout,
                     rollout_generator(s.run.seed, step, s.device), users,
                     part.span if part is not None else None, part.total if part is not None else None)
    gate_ro = None
    if s.run.kind == "oracle_gate":
        if s.gate_reward is None:
            raise ValueError(f"{s.run.namespace}: the oracle_gate variant needs the oracle reward (gate_reward)")
        gate_ro = rescore(ro, targets, histories, s.gate_reward, users)
    gate_rng = torch.Generator().manual_seed(int(s.run.seed) * 1_000_003 + step)
    logp_old, first = None, None
    for _ in range(s.params.inner_steps):
        with s.policy.accelerator.autocast():
            loss, terms, diag, old = step_losses(s, x, mask, ro, logp_old, gate_rng, gate_ro, part)
        if logp_old is None:  # log what the first update saw
            logp_old, first = old, (terms, diag)
        s.policy.update(loss, len(targets))
    terms, diag = first
    w_nll, w_grpo = s.run.variant.weights(s.params.lam)
    return {
        "loss": float(loss.detach()), "nll": float(terms["nll"].mean()),
        "grpo_loss": float(terms["grpo_loss"].mean()), "kl": float(terms["kl"].mean()),
        "reward_mean": float(ro.rewards.mean()), "reward_std": float(ro.rewards.std(dim=1, unbiased=False).mean()),
        "reward_target": float(ro.target_reward.mean()), "invalid_share": float((ro.items < 0).float().mean()),
        "admitted": float(diag.admitted.float().mean()), "pass_pol": float(diag.pass_pol.float().mean()),
        "pass_rew": float(diag.pass_rew.float().mean()),
        "d_pol_mean": float(diag.d_pol.float().mean()), "d_rew_mean": float(diag.d_rew.float().mean()),
        # the dose: mean GRPO weight per sample relative to the NLL's
        "grpo_dose": float(w_grpo * terms["weight"].mean() / w_nll) if w_nll else float("nan"),
        "lr": float(s.policy.scheduler.get_last_lr()[0]),
    }


def rl_fingerprint(run: RunSpec, p: AdaGrpoParams, init: dict[str, torch.Tensor], reward: RewardModel,
                   train: Samples, gate_reward: RewardModel | None = None) -> str:
    """The run, its parameters, the starting policy, the reward model(s) and the training samples."""
    config = {"params": p.model_dump(exclude={"state_dir", "mix_alphas", "seeds", "seed", "device", "processes"}),
              "run": run.model_dump(exclude={"namespace"}), "reward": reward.calibrator,
              "invalid_reward": reward.invalid_reward}
    gate = [gate_reward.ranker.state_dict()] if gate_reward is not None else []
    return fingerprint(config, [init, reward.ranker.state_dict(), *gate, train.column_chunks("target"),
                                train.column_chunks("user_id")])


def setup(model: torch.nn.Module, encoder: HistoryEncoder, trie: SidTrie, reward: RewardModel, run: RunSpec,
          p: AdaGrpoParams, gate_reward: RewardModel | None = None) -> RlSetup:
    """π_θ from `model` (the SFT policy, also frozen as π_ref), AdamW with warm-up and the
    configured schedule."""
    ref = copy.deepcopy(model).eval().requires_grad_(False)

    def schedule(opt: torch.optim.Optimizer):
        if p.lr_schedule == "cosine":
            return get_cosine_schedule_with_warmup(opt, p.warmup_steps, p.max_steps)
        return get_constant_schedule_with_warmup(opt, p.warmup_steps)

    policy = prepare_training(model, p.device, p.lr, p.weight_decay, p.grad_clip, schedule)
    for r in (reward, gate_reward):
        if r is not None:
            r.ranker.to(policy.device)
    return RlSetup(policy, ref.to(policy.device), encoder, trie.to(policy.device), reward, run, p, gate_reward)


@on_processes("p")
def train_rl(model: torch.nn.Module, encoder: HistoryEncoder, train: pd.DataFrame | ParquetSamples, valid: pd.DataFrame,
             trie: SidTrie,
             reward_model: RewardModel, run: RunSpec, p: AdaGrpoParams, state_dir: Path,
             seen_valid: list[set[int]] | None = None, log_fn: LogFn | None = None,
             gate_reward: RewardModel | None = None, eval_reward: RewardModel | None = None) -> RlResult:
    """Fine-tune `model` (initialised from the SFT policy, which also becomes π_ref) as `run`
    says (variant, seed); every `checkpoint_every` steps a checkpoint file in `state_dir`.
    `gate_reward`: the reward that ranks y* for d_rew (`oracle_gate`: the oracle);
    `eval_reward`: the reward of the validation lists' `valid_reward@10` (default: the training
    reward; the controlled study passes the oracle, so it is the lists' true utility).
    `p.processes` > 1: data-parallel on that many launched processes, whose finished run this
    process then reads from `state_dir` (see `train_sft`)."""
    samples = as_samples(train)
    fp = rl_fingerprint(run, p, cpu_state_dict(model), reward_model, samples, gate_reward)
    s = setup(model, encoder, trie, reward_model, run, p, gate_reward)
    if eval_reward is not None:
        eval_reward.ranker.to(s.device)
    valid, seen_valid = validation_subset(valid, seen_valid, p.eval_users, p.eval_seed)

    def step(part: Part, step: int) -> dict[str, float]:
        batch = samples.fetch(part.rows)
        return train_step(s, batch.histories, batch.users, batch.targets, step, part)

    def evaluate() -> dict[str, float]:
        return validation_metrics(s.policy.model, encoder, s.trie, valid, seen_valid, p.eval_beams, s.device,
                                  eval_reward or reward_model, s.policy.ranks)

    loop = TrainingLoop(run.namespace, Schedule(len(samples), p.batch_size, run.seed, p.max_steps, p.eval_every,
                                                p.checkpoint_every, samples.rows),
                        s.policy.model, s.policy.optimizer, s.policy.scheduler, state_dir=state_dir, fingerprint=fp, per_step_history=True,
                        eval_at_start=True, keep_checkpoints=True, train_mode=False, log_fn=log_fn,
                        shown=("nll", "reward_mean", "admitted", "invalid_share", "valid_hr@10", "valid_hr@10_filtered",
                               "valid_hallucination@10", "valid_reward@10"), ranks=s.policy.ranks)
    res = loop.run(step, evaluate)
    return RlResult(s.policy.model.eval(), res.history, res.checkpoints, res.resumed_from)
