"""The RL stage (DESIGN section 4) on HF Accelerate: rollouts through the decoding engine,
rewards from the calibrated ranker, the diagnostics and gate, and each variant's loss.

One step = one batch of B training samples:
1. rollouts: G candidates per sample from π_θ (sampling or beam, constrained or not);
2. rewards R(x, y) of the candidates (invalid → `invalid_reward`) and of y*;
3. one teacher-forced decoder pass over {y*} ∪ rollouts for π_θ (and, without gradient, for
   π_ref): log π(y*|x) gives the NLL and d_pol, the rollouts' token log-probabilities give the
   clipped ratio objective and the k3 KL;
4. `inner_steps` updates on that rollout batch (π_old = π_θ at rollout time).

Dropout is off throughout (rollout and update log-probabilities come from the same network,
so ρ = 1 at the first inner step). Batches come from a (seed, epoch) permutation and the
rollout RNG is seeded by (seed, step): a resumed run is identical to an uninterrupted one.
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from safetensors.torch import load_file, save_file
from tqdm.auto import tqdm
from transformers.modeling_outputs import BaseModelOutput

from adagrpo_pipeline.policy.checkpoint import load_training_state, save_training_state
from adagrpo_pipeline.policy.decoding import beam_search, sample
from adagrpo_pipeline.policy.evaluation import decode_lists, list_metrics, list_quality
from adagrpo_pipeline.policy.model import HistoryEncoder, encoder_inputs
from adagrpo_pipeline.reward.reward import RewardModel
from adagrpo_pipeline.semantic_ids.trie import SidTrie
from adagrpo_pipeline.training import batch_indices, cpu_state_dict, make_accelerator

from .config import AdaGrpoParams, Variant
from .losses import (
    gate,
    group_advantages,
    grpo_loss_per_sample,
    rank_of_target,
    sequence_keys,
    variant_loss,
)

log = logging.getLogger(__name__)

LogFn = Callable[[dict[str, float], int], None]


def sequence_logprobs(model, hidden: torch.Tensor, mask: torch.Tensor, seqs: torch.Tensor, start_token: int = 0) -> torch.Tensor:
    """Token log-probabilities (B, N, L) of N sequences per input under `model`, teacher forced,
    given the encoder states `hidden` (B, T, d): one decoder pass over B·N sequences."""
    b, n, length = seqs.shape
    flat = seqs.reshape(b * n, length)
    dec_in = torch.cat([torch.full_like(flat[:, :1], start_token), flat[:, :-1]], dim=1)
    out = model(encoder_outputs=BaseModelOutput(last_hidden_state=hidden.repeat_interleave(n, dim=0)),
                attention_mask=mask.repeat_interleave(n, dim=0), decoder_input_ids=dec_in, use_cache=False)
    logp = torch.log_softmax(out.logits.float(), dim=-1).gather(-1, flat.unsqueeze(-1)).squeeze(-1)
    return logp.reshape(b, n, length)


def encode(model, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    return model.get_encoder()(**encoder_inputs(model, x), attention_mask=mask).last_hidden_state


@dataclass
class Rollouts:
    seqs: torch.Tensor  # (B, 1 + G, L): y* then the G rollouts
    items: torch.Tensor  # (B, G) item id or -1
    rewards: torch.Tensor  # (B, G)
    target_reward: torch.Tensor  # (B,)


def rollout(model, x: torch.Tensor, mask: torch.Tensor, target_tokens: torch.Tensor, targets: np.ndarray,
            histories: list, trie: SidTrie, reward_model: RewardModel, p: AdaGrpoParams,
            generator: torch.Generator) -> Rollouts:
    r = p.rollout
    constraint = trie if r.constrained else None
    if r.mode == "sample":
        dec = sample(model, x, mask, r.group_size, trie.depth, r.temperature, trie=constraint, lookup_trie=trie,
                     generator=generator)
    else:
        dec = beam_search(model, x, mask, r.group_size, trie.depth, trie=constraint, lookup_trie=trie)
    rewards = reward_model(histories, dec.items)
    target_reward = reward_model(histories, torch.as_tensor(targets, device=dec.items.device)[:, None])[:, 0]
    seqs = torch.cat([target_tokens[:, None, :], dec.tokens], dim=1)
    return Rollouts(seqs, dec.items, rewards.float(), target_reward.float())


@dataclass
class StepOutput:
    loss: torch.Tensor
    metrics: dict[str, float]


def diagnostics(ro: Rollouts, logp: torch.Tensor, vocab_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(d_pol, d_rew) per sample over C = unique({y*} ∪ rollouts): the rank of y* by the
    policy's sequence log-probability (`logp`: token log-probs of `ro.seqs`) and by reward."""
    keys = sequence_keys(ro.seqs, vocab_size)
    seq_logp = logp.sum(dim=-1)
    d_pol = rank_of_target(keys[:, 0], seq_logp[:, 0], keys[:, 1:], seq_logp[:, 1:])
    d_rew = rank_of_target(keys[:, 0], ro.target_reward, keys[:, 1:], ro.rewards)
    return d_pol, d_rew


@torch.no_grad()
def sample_diagnostics(model, encoder: HistoryEncoder, samples: pd.DataFrame, trie: SidTrie, reward_model: RewardModel,
                       p: AdaGrpoParams, batch_size: int, device: torch.device) -> pd.DataFrame:
    """d_pol, d_rew and the gate of every sample under `model` (e.g. the SFT policy on the test
    split, for the strata of DESIGN section 5), with the RL stage's rollout settings and seed."""
    model.eval()
    trie = trie.to(device)
    histories, users, targets = samples["history"].to_list(), samples["user_id"].to_numpy(), samples["target"].to_numpy()
    out = []
    for lo in range(0, len(samples), batch_size):
        sl = slice(lo, lo + batch_size)
        x, mask = (t.to(device) for t in encoder(histories[sl], users[sl]))
        gen = torch.Generator(device=device).manual_seed(int(p.seed) * 1_000_003 + lo)
        ro = rollout(model, x, mask, encoder.targets(targets[sl]).to(device), targets[sl], histories[sl], trie,
                     reward_model, p, gen)
        d_pol, d_rew = diagnostics(ro, sequence_logprobs(model, encode(model, x, mask), mask, ro.seqs),
                                   encoder.layout.vocab_size)
        out.append(pd.DataFrame({"user_id": users[sl], "d_pol": d_pol.cpu().numpy(), "d_rew": d_rew.cpu().numpy()}))
    df = pd.concat(out, ignore_index=True)
    df["pass_pol"], df["pass_rew"] = df["d_pol"] > p.k_pol, df["d_rew"] <= p.k_rew
    df["admitted"] = df["pass_pol"] & df["pass_rew"]
    return df


def step_losses(model, ref_model, x, mask, ro: Rollouts, logp_old: torch.Tensor | None, variant: Variant,
                p: AdaGrpoParams, vocab_size: int) -> tuple[torch.Tensor, dict[str, torch.Tensor], torch.Tensor]:
    """Loss of one update on a rollout batch, its diagnostics, and π_θ's log-probabilities
    (the π_old of the later inner steps when `logp_old` is None)."""
    logp = sequence_logprobs(model, encode(model, x, mask), mask, ro.seqs)
    with torch.no_grad():
        logp_ref = sequence_logprobs(ref_model, encode(ref_model, x, mask), mask, ro.seqs)
    old = logp.detach() if logp_old is None else logp_old
    nll = -logp[:, 0].mean(dim=-1)  # per-token NLL of y*, as in SFT
    adv = group_advantages(ro.rewards, p.adv_eps)
    grpo, kl = grpo_loss_per_sample(logp[:, 1:], old[:, 1:], logp_ref[:, 1:], adv, p.clip_eps, p.beta)
    d_pol, d_rew = diagnostics(ro, old, vocab_size)
    c = gate(d_pol, d_rew, p.k_pol, p.k_rew)
    loss = variant_loss(variant, nll, grpo, c, p.lam)
    diag = {"nll": nll.detach(), "grpo_loss": grpo.detach(), "kl": kl.detach(), "d_pol": d_pol, "d_rew": d_rew,
            "admitted": c, "pass_pol": d_pol > p.k_pol, "pass_rew": d_rew <= p.k_rew}
    return loss, diag, old


def fingerprint(p: AdaGrpoParams, variant: Variant, init_tensors: dict[str, torch.Tensor], reward_model: RewardModel,
                train: pd.DataFrame) -> str:
    h = hashlib.sha256()
    h.update(json.dumps({"params": p.model_dump(exclude={"state_dir", "mix_alphas", "seeds", "device"}),
                         "variant": variant.to_json(), "reward": reward_model.calibrator,
                         "invalid_reward": reward_model.invalid_reward}, sort_keys=True, default=str).encode())
    for t in (init_tensors, reward_model.ranker.state_dict()):
        for k in sorted(t):
            h.update(k.encode())
            h.update(t[k].detach().cpu().float().numpy().tobytes())
    h.update(train["target"].to_numpy(np.int64).tobytes())
    h.update(train["user_id"].to_numpy(np.int64).tobytes())
    return h.hexdigest()[:16]


@dataclass
class RlResult:
    model: torch.nn.Module
    history: pd.DataFrame  # one row per step (+ valid_* columns at evaluation steps)
    checkpoints: dict[int, dict[str, torch.Tensor]]  # step -> state dict
    resumed_from: int


def _ckpt_path(state_dir: Path, step: int) -> Path:
    return state_dir / "checkpoints" / f"step-{step:06d}.safetensors"


def validation_metrics(model, encoder: HistoryEncoder, trie: SidTrie, valid: pd.DataFrame, seen: list[set[int]] | None,
                       reward_model: RewardModel, beams: int, device: torch.device) -> dict[str, float]:
    """HR/NDCG@10 (as decoded and history-filtered), hallucination@10 and the mean calibrated
    reward of the top-10 (invalid → invalid_reward) of unconstrained beam search."""
    ranked = decode_lists(model, encoder, valid, trie, beams, constrained=False, batch_size=256, device=device)
    m = list_metrics(ranked, valid["target"].to_numpy(), [10], seen)
    m.update(list_quality(ranked, valid["history"].to_list(), len(encoder.item_tokens), reward_model))
    return m


def train_step(accelerator, model, raw, ref_model, optimizer, scheduler, encoder: HistoryEncoder, histories: list,
               users: np.ndarray, targets: np.ndarray, trie: SidTrie, reward_model: RewardModel, variant: Variant,
               p: AdaGrpoParams, step: int) -> dict[str, float]:
    """One RL step on one batch (module docstring, 1-4); returns the step's logged values.
    `model` is the Accelerate-prepared policy, `raw` the same module unwrapped."""
    device = accelerator.device
    x, mask = encoder(histories, users)
    x, mask = x.to(device), mask.to(device)
    target_tokens = encoder.targets(targets).to(device)
    gen = torch.Generator(device=device).manual_seed(int(p.seed) * 1_000_003 + step)
    with accelerator.autocast():
        ro = rollout(raw, x, mask, target_tokens, targets, histories, trie, reward_model, p, gen)
    logp_old, first = None, None
    for _ in range(p.inner_steps):
        with accelerator.autocast():
            loss, diag, old = step_losses(model, ref_model, x, mask, ro, logp_old, variant, p, encoder.layout.vocab_size)
        if logp_old is None:
            logp_old, first = old, diag
        accelerator.backward(loss)
        accelerator.clip_grad_norm_(model.parameters(), p.grad_clip)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
    return {
        "loss": float(loss.detach()), "nll": float(first["nll"].mean()),
        "grpo_loss": float(first["grpo_loss"].mean()), "kl": float(first["kl"].mean()),
        "reward_mean": float(ro.rewards.mean()), "reward_std": float(ro.rewards.std(dim=1, unbiased=False).mean()),
        "reward_target": float(ro.target_reward.mean()), "invalid_share": float((ro.items < 0).float().mean()),
        "admitted": float(first["admitted"].float().mean()), "pass_pol": float(first["pass_pol"].float().mean()),
        "pass_rew": float(first["pass_rew"].float().mean()),
        "d_pol_mean": float(first["d_pol"].float().mean()), "d_rew_mean": float(first["d_rew"].float().mean()),
    }


def train_rl(model: torch.nn.Module, encoder: HistoryEncoder, train: pd.DataFrame, valid: pd.DataFrame, trie: SidTrie,
             reward_model: RewardModel, variant: Variant, p: AdaGrpoParams, state_dir: Path,
             seen_valid: list[set[int]] | None = None, log_fn: LogFn | None = None) -> RlResult:
    """Fine-tune `model` (initialised from the SFT policy, which also becomes π_ref)."""
    accelerator = make_accelerator(p.device)
    device = accelerator.device
    init = cpu_state_dict(model)
    ref_model = copy.deepcopy(model).to(device).eval().requires_grad_(False)
    model = model.to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=p.lr, weight_decay=p.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda _: 1.0)
    model, optimizer = accelerator.prepare(model, optimizer)
    raw = accelerator.unwrap_model(model)
    reward_model.ranker.to(device)
    trie = trie.to(device)

    if p.eval_users is not None and p.eval_users < len(valid):
        idx = np.sort(np.random.default_rng(p.eval_seed).choice(len(valid), p.eval_users, replace=False))
        valid = valid.iloc[idx].reset_index(drop=True)
        seen_valid = [seen_valid[i] for i in idx] if seen_valid is not None else None

    fp = fingerprint(p, variant, init, reward_model, train)
    counters = {"step": 0, "history": [], "fingerprint": fp}
    resumed_from = 0
    if (state_dir / "state.json").exists():
        if json.loads((state_dir / "state.json").read_text())["counters"].get("fingerprint") == fp:
            counters = load_training_state(state_dir, raw, optimizer, scheduler)
            resumed_from = counters["step"]
            log.info("%s: resuming from step %d (%s)", variant.name, resumed_from, state_dir)
        else:
            log.warning("%s: state in %s belongs to another configuration, data or SFT policy: starting afresh",
                        variant.name, state_dir)
            for stale in (state_dir / "checkpoints").glob("*.safetensors"):
                stale.unlink()

    histories, users, targets = train["history"].to_list(), train["user_id"].to_numpy(), train["target"].to_numpy()
    model.eval()  # dropout off (module docstring); gradients still flow
    if counters["step"] == 0:  # the starting (SFT) policy: step 0 of the training-dynamics curves
        m0 = {f"valid_{k}": v for k, v in validation_metrics(raw, encoder, trie, valid, seen_valid, reward_model,
                                                                p.eval_beams, device).items()}
        counters["history"].append({"step": 0, **m0})
        if log_fn is not None:
            log_fn(m0, 0)
    bar = tqdm(total=p.max_steps, initial=counters["step"], desc=variant.name, unit="step", disable=None)
    while counters["step"] < p.max_steps:
        step = counters["step"]
        idx = batch_indices(step, len(train), p.batch_size, p.seed)
        row = {"step": step + 1, **train_step(accelerator, model, raw, ref_model, optimizer, scheduler, encoder,
                                              [histories[i] for i in idx], users[idx], targets[idx], trie, reward_model,
                                              variant, p, step)}
        step += 1
        counters["step"] = step
        if step % p.eval_every == 0 or step == p.max_steps:
            m = validation_metrics(raw, encoder, trie, valid, seen_valid, reward_model, p.eval_beams, device)
            row.update({f"valid_{k}": v for k, v in m.items()})
            log.info("%s step %d: nll %.4f, reward %.4f, admitted %.3f, invalid %.3f, valid hr@10 %.4f (filtered %.4f), "
                     "hallucination@10 %.4f, reward@10 %.4f", variant.name, step, row["nll"], row["reward_mean"],
                     row["admitted"], row["invalid_share"], m["hr@10"], m.get("hr@10_filtered", float("nan")),
                     m["hallucination@10"], m["reward@10"])
        counters["history"].append(row)
        bar.update(1)
        bar.set_postfix(reward=f"{row['reward_mean']:.3f}", admitted=f"{row['admitted']:.2f}")
        if log_fn is not None:
            log_fn({k: v for k, v in row.items() if k != "step"}, step)
        if step % p.checkpoint_every == 0 or step == p.max_steps:
            _ckpt_path(state_dir, step).parent.mkdir(parents=True, exist_ok=True)
            save_file(cpu_state_dict(raw), _ckpt_path(state_dir, step))
            save_training_state(state_dir, raw, optimizer, scheduler, counters)
    bar.close()
    checkpoints = {int(f.stem.split("-")[1]): load_file(f) for f in sorted((state_dir / "checkpoints").glob("step-*.safetensors"))}
    checkpoints = {s: t for s, t in checkpoints.items() if s <= p.max_steps}
    return RlResult(raw.eval(), pd.DataFrame(counters["history"]), checkpoints, resumed_from)
