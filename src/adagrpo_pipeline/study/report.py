"""The controlled study's report: its tables (`tables`), two figures (`figures`), `study.md`
(`text`) and `summary.json`. Kedro-free."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from .config import StudyParams
from .figures import plot_deltas, plot_strata
from .tables import StudyInputs, StudyTables, study_tables
from .text import ci_text, reading, render_markdown


@dataclass
class StudyReport:
    """Everything `study` publishes (`pipelines.study`)."""

    summary: dict[str, Any]
    table: pd.DataFrame
    premise: pd.DataFrame
    delta_figure: Figure
    strata_figure: Figure
    markdown: str


def _json_safe(value: Any) -> Any:
    """NaN → null (strict JSON), numpy scalars → Python ones."""
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def summary_document(t: StudyTables, reading_lines: list[str], params: StudyParams, ci: str) -> dict[str, Any]:
    """`summary.json`: the design, every table as records and the reading."""
    return {
        "design": {"levels": [b.model_dump() for b in params.levels], "information": [i.model_dump() for i in params.information],
                   "seed": params.seed, "seeds_per_run": 1, "ci": ci},
        "minimum_detectable_effect": t.mde,
        "settings": t.settings.to_dict(orient="records"),
        "sft": t.sft.to_dict(orient="records"),
        "runs": t.runs.to_dict(orient="records"),
        "adagrpo_vs_controls": t.contrasts.to_dict(orient="records"),
        "premise": t.premise.to_dict(orient="records"),
        "premise_verdicts": t.verdicts.to_dict(orient="records"),
        "reading": reading_lines,
    }


def build_study_report(x: StudyInputs, params: StudyParams) -> StudyReport:
    """Every table once, then the figures, `study.md` and `summary.json` from them."""
    t = study_tables(x)
    boot = x.boot
    lines = reading(t, params)
    return StudyReport(_json_safe(summary_document(t, lines, params, ci_text(boot))), t.runs, t.premise,
                       plot_deltas(t.runs, params, boot.level), plot_strata(t.premise, params, boot.level),
                       render_markdown(t, lines, boot))
