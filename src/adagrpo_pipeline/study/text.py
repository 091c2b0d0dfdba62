"""The controlled study's words: `study.md`, one section per table, and the plain reading of the
CIs. Kedro-free. Every confidence level and power written here comes from the bootstrap the CIs
were computed with (`adagrpo_pipeline.stats`)."""

from __future__ import annotations

import pandas as pd

from adagrpo_pipeline.stats import POWER, Bootstrap, percent

from .config import StudyParams
from .tables import HEADLINE, METRICS, StudyTables

TITLE = "# Controlled study: when do the diagnostics pick the samples where the reward helps?"
DESIGN = ("Simulator: one log per exposure-bias level (the logging policy's popularity weight γ); per level one SFT "
          "policy, per information level one ranker (noise on the latent vectors it sees); every RL run from that "
          "level's SFT policy with the same steps and seed. Test metrics over every test user of the level.")
FIGURES = "Figures: `study_deltas.png` (Δ vs SFT against bias), `study_strata.png` (the premise test)."


def ci_text(boot: Bootstrap) -> str:
    """How every CI of the study was computed, in words."""
    return (f"{percent(boot.level)} percentile bootstrap over test users, {boot.resamples} resamples; one seed per run, "
            "so no seed variance")


def _fmt(row: pd.Series, prefix: str) -> str:
    if prefix not in row or row[prefix] != row[prefix]:
        return ""
    return f"{row[prefix]:+.4f} [{row[f'{prefix}_ci_low']:+.4f}, {row[f'{prefix}_ci_high']:+.4f}] {row[f'{prefix}_call']}"


def _per_setting(t: StudyTables, params: StudyParams) -> list[str]:
    """Per level × information: AdaGRPO against SFT, `sft_continue` and its controls."""
    final = t.runs[t.runs["checkpoint"] == "final"].set_index(["level", "reward", "variant"])
    c_final = t.contrasts[(t.contrasts["checkpoint"] == "final") & (t.contrasts["metric"] == HEADLINE)]
    lines = []
    for b in params.levels:
        for info in params.information:
            key = (b.name, info.name)
            if (*key, "adagrpo") not in final.index:
                continue
            a = final.loc[(*key, "adagrpo")]
            parts = [(f"**bias {b.name} (γ {b.exposure_gamma:g}), information {info.name}**: AdaGRPO vs SFT "
                      f"utility {_fmt(a, 'd_utility@10_vs_sft')}, HR@10 {_fmt(a, 'd_hit@10_filtered_vs_sft')}; vs "
                      f"sft_continue utility {_fmt(a, 'd_utility@10_vs_sft_continue')}")]
            for other in ("random_gate", "oracle_gate", "uniform"):
                c = c_final[(c_final["level"] == b.name) & (c_final["information"] == info.name) & (c_final["against"] == other)]
                if len(c):
                    parts.append(f"AdaGRPO − {other} utility {_fmt(c.iloc[0], 'delta')}")
            parts.append(f"admitted {a['admitted']:.3f}")
            lines.append("- " + "; ".join(parts) + ".")
    return lines


def _against_control(t: StudyTables) -> list[str]:
    """Per metric, the settings where AdaGRPO beats or loses to `sft_continue`."""
    helps = t.runs[(t.runs["checkpoint"] == "final") & (t.runs["variant"] == "adagrpo")]
    lines = []
    for m, label in METRICS.items():
        up = helps[helps[f"d_{m}_vs_sft_continue_call"] == "above"]
        down = helps[helps[f"d_{m}_vs_sft_continue_call"] == "below"]
        lines.append(f"- AdaGRPO beats `sft_continue` on {label} in {len(up)} of {len(helps)} settings"
                     + (f" ({', '.join(up['level'] + '/' + up['reward'])})" if len(up) else "")
                     + f", loses in {len(down)}" + (f" ({', '.join(down['level'] + '/' + down['reward'])})" if len(down) else "")
                     + ", the rest not resolved.")
    return lines


def _premise(t: StudyTables) -> list[str]:
    """Per metric, strata source and reward: in how many settings the premise held."""
    lines = []
    for m, label in METRICS.items():
        for source in ("ranker", "oracle"):
            v = t.verdicts[(t.verdicts["strata_by"] == source) & (t.verdicts["metric"] == m)]
            for reward in ("ranker", "oracle"):
                sub = v[v["reward"] == reward]
                counts = {k: int(sub["verdict"].str.startswith(k).sum()) for k in ("holds", "partly", "no")}
                held = sub[sub["verdict"] == "holds"]
                lines.append(f"- Premise on {label} (strata by the {source}'s d_rew, {reward} reward): holds in "
                             f"{counts['holds']} of {len(sub)} settings"
                             + (f" ({', '.join(held['level'] + '/' + held['information'])})" if len(held) else "")
                             + f"; partly (rejected strata gain too) in {counts['partly']}; no in {counts['no']}.")
    return lines


def reading(t: StudyTables, params: StudyParams) -> list[str]:
    """Plain sentences: where AdaGRPO helps, where it does not, whether the premise held."""
    return [*_per_setting(t, params), *_against_control(t), *_premise(t)]


def _md_table(df: pd.DataFrame) -> str:
    return df.to_markdown(index=False, floatfmt=".4f")


def _section(title: str, table: pd.DataFrame) -> list[str]:
    return [f"## {title}", "", _md_table(table), ""]


def _final_runs(t: StudyTables) -> pd.DataFrame:
    final = t.runs[t.runs["checkpoint"] == "final"]
    shown = final[["level", "reward", "variant", "utility@10", "hit@10_filtered", "hallucination@10", "admitted"]].copy()
    for m in METRICS:
        shown[f"Δ {m} vs SFT"] = final.apply(lambda r, m=m: _fmt(r, f"d_{m}_vs_sft"), axis=1)
        shown[f"Δ {m} vs sft_continue"] = final.apply(lambda r, m=m: _fmt(r, f"d_{m}_vs_sft_continue"), axis=1)
    return shown


def _best_runs(t: StudyTables) -> pd.DataFrame:
    best = t.runs[t.runs["checkpoint"] == "best"]
    shown = best[["level", "reward", "variant", "step", "utility@10", "hit@10_filtered"]].copy()
    shown["Δ utility@10 vs SFT"] = best.apply(lambda r: _fmt(r, "d_utility@10_vs_sft"), axis=1)
    shown["Δ HR@10 vs SFT"] = best.apply(lambda r: _fmt(r, "d_hit@10_filtered_vs_sft"), axis=1)
    return shown


def _contrasts(t: StudyTables, level: float) -> pd.DataFrame:
    shown = t.contrasts[["level", "information", "checkpoint", "against", "metric"]].copy()
    shown[f"AdaGRPO − control ({percent(level)} CI)"] = t.contrasts.apply(lambda r: _fmt(r, "delta"), axis=1)
    return shown


def _premise_effects(t: StudyTables, level: float) -> pd.DataFrame:
    prem = t.premise[(t.premise["strata_by"] == "ranker")].copy()
    column = f"effect ({percent(level)} CI)"
    prem[column] = prem.apply(lambda r: _fmt(r, "effect") or r["effect_call"], axis=1)
    return prem[["level", "information", "metric", "stratum", "samples", "reward", column]]


def render_markdown(t: StudyTables, reading_lines: list[str], boot: Bootstrap) -> str:
    """`study.md`: the design, the minimum detectable effects, the reading, then every table."""
    md = [TITLE, "", f"{DESIGN} {ci_text(boot)}.", "",
          (f"Minimum detectable effect (median over comparisons, {percent(POWER)} power): true utility@10 "
           f"{t.mde['utility@10']:.4f}, HR@10 (filtered) {t.mde['hit@10_filtered']:.4f}."), "",
          "## Plain reading", "", *reading_lines, "",
          *_section("Settings: exposure bias and what the reward knows", t.settings),
          *_section("SFT policy per level (test)", t.sft),
          *_section("Every run vs SFT and vs sft_continue (final checkpoint)", _final_runs(t)),
          *_section("AdaGRPO against its controls (same ranker, paired)", _contrasts(t, boot.level)),
          *_section("Checkpoint chosen on valid (NDCG@10 filtered; step 0 = the SFT policy)", _best_runs(t)),
          *_section("Premise test: the reward term's effect (uniform − sft_continue) per stratum of the SFT policy's "
                    "diagnostics (strata by the ranker's d_rew)", _premise_effects(t, boot.level)),
          *_section("Premise verdicts", t.verdicts),
          FIGURES, ""]
    return "\n".join(md)
