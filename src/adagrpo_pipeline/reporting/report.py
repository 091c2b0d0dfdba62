"""One report of `evaluate` / `compare`: its tables (`tables`), figures (`figures`), Markdown
(`text`), `summary.json` (`document`) and flat MLflow figures, over a set of runs beside the
reference rows. Kedro-free."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pandas as pd
from matplotlib.figure import Figure

from adagrpo_pipeline.adagrpo.runs import ReferenceSpec, RunSpec
from adagrpo_pipeline.stats import Bootstrap

from .document import summary_document
from .figures import plot_dynamics, plot_frontier, plot_strata
from .tables import (
    Tables,
    flat_metrics,
    frontier_points,
    metric_columns,
    paired_table,
    reference_seeds,
    results_table,
    run_table,
    strata_table,
    summarize,
)
from .text import render_markdown, report_title


@dataclass
class Report:
    """Everything `evaluate` / `compare` publish about a set of runs."""

    results: pd.DataFrame  # reference rows, then every run's final and best rows
    summary: pd.DataFrame  # mean ± std over seeds per (variant, checkpoint)
    strata: pd.DataFrame  # per stratum × variant HR@10 change vs SFT
    paired: pd.DataFrame  # every paired difference with its bootstrap CI (`paired_table`)
    figures: tuple[Figure, Figure, Figure]  # dynamics, frontier, strata
    markdown: str
    metrics: dict[str, float]  # flat headline figures for MLflow
    document: dict[str, Any]  # summary.json


def build_report(runs: list[RunSpec], evals: list[pd.DataFrame], hits: list[pd.DataFrame], histories: list[pd.DataFrame],
                 references: list[pd.DataFrame], sft_strata: pd.DataFrame, config: dict[str, dict[str, Any]],
                 mlflow_run: str, seeded: list[tuple[ReferenceSpec, pd.DataFrame]] = (),
                 reference_hits: dict[str, pd.DataFrame] | None = None, reward: dict[str, Any] | None = None,
                 boot: Bootstrap | None = None) -> Report:
    """Tables, plots, Markdown, flat metrics and `summary.json` of `runs` (their evaluations,
    test hits and histories, in the same order), beside the reference rows (the SFT policy's
    first, whose per-user hits are `sft_strata`), the other reference models' per-user hits
    (`reference_hits`, compared with SFT), the reference models trained with several seeds
    (`seeded`) and the reward's informativeness figures (`reward`); every CI with `boot`'s settings
    (None: the default ones)."""
    boot, seeded = boot or Bootstrap(), list(seeded)
    run_hits = dict(zip(runs, hits, strict=True))
    rows = run_table(runs, evals)
    strata = strata_table(sft_strata, run_hits)
    t = Tables(pd.concat(references, ignore_index=True), rows, summarize(rows, metric_columns(rows)), strata, sft_strata,
               paired_table(sft_strata, run_hits, reference_hits, boot), *reference_seeds(seeded))
    figures = (plot_dynamics(dict(zip(runs, histories, strict=True))), plot_frontier(frontier_points(runs, evals), t.refs),
               plot_strata(strata))
    title = report_title(runs)
    return Report(results_table(t, seeded), t.summary, strata, t.paired, figures,
                  render_markdown(title, t, config, mlflow_run, reward or {}, boot.level), flat_metrics(t),
                  summary_document(title, t, reward or {}, mlflow_run))
