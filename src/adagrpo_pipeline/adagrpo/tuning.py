"""Equal-budget tuning of every RL variant on the valid split (docs/architecture.md, "Evaluation
protocol": knobs are chosen on valid only, with the same budget for every variant).

Each variant gets the same number of Optuna trials (a seeded TPE sampler; its first
`n_startup_trials` are random), each trial one RL run of the same length from the SFT policy
with the same seed, data and validation users. A trial's score is the best validation
NDCG@10 (history-filtered, the metric that picks checkpoints) over its evaluated steps, step 0
(the SFT policy) included; its best step is the chosen number of steps. The controls of the gate
(`random_gate`, `mix_matched`) take AdaGRPO's chosen k_pol and k_rew (their dose is AdaGRPO's
admitted share) and search their own λ and learning rate.

Knobs per variant kind (`KNOBS`): sft_continue: lr; grpo and mix_<α> (α is the variant): lr, β;
mix_matched and random_gate: lr, λ; adagrpo: lr, λ, k_pol, k_rew.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
import pandas as pd
from pydantic import Field

from adagrpo_pipeline.params import Strict
from adagrpo_pipeline.training.selection import SELECT_ON, best_row

from .config import AdaGrpoParams, Variant

log = logging.getLogger(__name__)

KNOBS = {"sft_continue": ("lr",), "grpo": ("lr", "beta"), "mix": ("lr", "beta"), "mix_matched": ("lr", "lam"),
         "random_gate": ("lr", "lam"), "adagrpo": ("lr", "lam", "k_pol", "k_rew")}
GATE_KNOBS = ("k_pol", "k_rew")  # the controls inherit AdaGRPO's


class SearchSpace(Strict):
    lr: tuple[float, float] = Field((1e-5, 1e-3), description="log-uniform")
    lam: tuple[float, float] = Field((0.1, 3.0), description="λ, log-uniform")
    beta: tuple[float, float] = Field((0.0, 0.1), description="β of the KL, uniform")
    k_pol: tuple[int, int] = Field((0, 3), description="integer range, inclusive")
    k_rew: tuple[int, int] = Field((1, 4), description="integer range, inclusive")


class TuneParams(Strict):
    """`params:tune`."""

    trials: int = Field(4, ge=1, description="Optuna trials per variant: the same budget for every variant")
    seed: int = Field(0, description="seed of every variant's sampler")
    max_steps: int | None = Field(None, ge=1, description="RL steps of a trial; null = adagrpo.max_steps")
    eval_every: int = Field(25, ge=1, description="validation every N steps of a trial")
    eval_users: int | None = Field(None, ge=1, description="validation users of a trial; null = all")
    space: SearchSpace = SearchSpace()
    state_dir: str = Field("data/06_models/tune_state", description="scratch folder of the running trial")

    def steps(self, base: AdaGrpoParams) -> int:
        """RL steps of a trial."""
        return self.max_steps or base.max_steps


@dataclass
class Tuned:
    """A variant's chosen settings and every trial."""

    variant: str
    params: dict[str, Any]  # the overrides of params:adagrpo, max_steps included
    score: float
    best_step: int
    trials: pd.DataFrame


def suggest(trial: optuna.Trial, kind: str, space: SearchSpace) -> dict[str, Any]:
    """The knobs of a variant kind for one trial."""
    out: dict[str, Any] = {}
    for knob in KNOBS[kind]:
        lo, hi = getattr(space, knob)
        if knob in ("k_pol", "k_rew"):
            out[knob] = trial.suggest_int(knob, lo, hi)
        else:
            out[knob] = trial.suggest_float(knob, lo, hi, log=knob in ("lr", "lam"))
    return out


def trial_params(base: AdaGrpoParams, tune: TuneParams, knobs: dict[str, Any], state_dir: Path) -> AdaGrpoParams:
    """The RL parameters of one trial: the base ones, the trial's knobs, the tuning budget."""
    steps = tune.steps(base)
    return AdaGrpoParams.model_validate({**base.model_dump(), **knobs, "max_steps": steps, "eval_every": tune.eval_every,
                                         "eval_users": tune.eval_users, "checkpoint_every": steps,
                                         "state_dir": str(state_dir)})


RunTrial = Callable[[AdaGrpoParams, Path], pd.DataFrame]  # params, state dir -> training history (valid_* rows)
LogTrial = Callable[[str, int, dict[str, Any], float, int], None]


def tune_variant(variant: Variant, run_trial: RunTrial, base: AdaGrpoParams, tune: TuneParams,
                 fixed: dict[str, Any] | None = None, log_trial: LogTrial | None = None) -> Tuned:
    """`tune.trials` trials of `variant` (its knobs, `fixed` ones set); the best by SELECT_ON."""
    fixed = dict(fixed or {})
    sampler = optuna.samplers.TPESampler(seed=tune.seed, n_startup_trials=min(10, tune.trials))
    study = optuna.create_study(direction="maximize", sampler=sampler, study_name=f"tune.{variant.name}")
    rows = []
    scratch = Path(tune.state_dir) / variant.name

    def objective(trial: optuna.Trial) -> float:
        knobs = {k: v for k, v in suggest(trial, variant.kind, tune.space).items() if k not in fixed} | fixed
        shutil.rmtree(scratch, ignore_errors=True)
        history = run_trial(trial_params(base, tune, knobs, scratch), scratch)
        evals = history.dropna(subset=[SELECT_ON])
        best = best_row(evals)
        score, step = float(best[SELECT_ON]), int(best["step"])
        trial.set_user_attr("best_step", step)
        rows.append({"variant": variant.name, "trial": trial.number, **knobs, "score": score, "best_step": step,
                     "score_at_start": float(evals.loc[evals["step"] == 0, SELECT_ON].iloc[0])
                     if (evals["step"] == 0).any() else float("nan")})
        log.info("tune %s trial %d: %s -> %s %.4f at step %d", variant.name, trial.number,
                 ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in knobs.items()),
                 SELECT_ON, score, step)
        if log_trial is not None:
            log_trial(variant.name, trial.number, knobs, score, step)
        return score

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study.optimize(objective, n_trials=tune.trials)
    shutil.rmtree(scratch, ignore_errors=True)
    best = study.best_trial
    knobs = {k: v for k, v in best.params.items() if k not in fixed} | fixed
    step = int(best.user_attrs["best_step"])
    steps = step if step > 0 else tune.steps(base)  # step 0 best: compare's selection may keep SFT
    return Tuned(variant.name, {**knobs, "max_steps": steps}, float(best.value), step, pd.DataFrame(rows))


def apply_tuned(params: AdaGrpoParams, tuned_settings: dict[str, Any], variant: Variant) -> AdaGrpoParams:
    """`params` with the variant's tuned settings (validated like the configuration)."""
    chosen = tuned_settings.get("variants", {}).get(variant.name)
    if chosen is None:
        raise ValueError(f"tuned_settings has no settings for variant {variant.name!r} (it has "
                         f"{sorted(tuned_settings.get('variants', {}))}): run `kedro run --pipeline=tune` with the "
                         "same adagrpo.mix_alphas first")
    return AdaGrpoParams.model_validate({**params.model_dump(), **chosen["params"]})
