"""`compare` on tiny data: every variant × seed, mean ± std, the plan changed by `--params`,
one variant re-run via `--namespaces`, the notebook, and the viz export of the graph."""

from __future__ import annotations

import json
from pathlib import Path

import mlflow
import nbformat
import pandas as pd
import pytest
from nbclient import NotebookClient

from conftest import REPO, kedro, ran_nodes, versions
from test_train_pipeline import tiny_project

pytestmark = pytest.mark.slow

VARIANTS = ["sft_continue", "grpo", "mix_0p5", "mix_matched", "random_gate", "adagrpo"]
def seeded_references(*seeds: int) -> set[str]:
    return {f"{m}.seed_{s}.{n}" for s in seeds for m, names in (("sft", ("train_sft_policy", "evaluate_sft_policy")),
            ("sasrec", ("train_sasrec_baseline", "sasrec_baseline"))) for n in names}


REFERENCES = {"evaluate.evaluate_sft_policy", "evaluate.popularity_baseline", "evaluate.train_sasrec_baseline",
              "evaluate.sasrec_baseline", "evaluate.report"}


def test_tune_then_compare_namespaces_notebook_and_viz(project: Path, mlflow_db: Path) -> None:
    tiny_project(project)
    # tune: every variant the same number of trials on valid, each trial an MLflow child run
    out = kedro(project, "run", "--pipeline=tune")
    assert ran_nodes(out) == {f"tune.tune_{v}" for v in VARIANTS} | {"tune.choose_settings"}
    settings = json.loads(versions(project, "data/06_models/tuned_settings.json")[-1].read_text())
    assert sorted(settings["variants"]) == sorted(VARIANTS) and settings["budget"]["trials_per_variant"] == 2
    mlflow.set_tracking_uri(f"sqlite:///{mlflow_db}")
    parent = mlflow.search_runs(experiment_names=["adagrpo_pipeline"], order_by=["start_time DESC"],
                                filter_string="tags.mlflow.runName = 'tune'").iloc[0]
    children = mlflow.search_runs(experiment_names=["adagrpo_pipeline"],
                                  filter_string=f"tags.mlflow.parentRunId = '{parent['run_id']}'")
    assert len(children) == 2 * len(VARIANTS) and children["params.lr"].notna().all()

    out = kedro(project, "run", "--pipeline=compare")
    expected = {f"{v}.seed_{s}.{n}" for v in VARIANTS for s in (0, 1) for n in ("train_policy", "evaluate_checkpoints")}
    assert ran_nodes(out) == expected | REFERENCES | seeded_references(0, 1)

    summary = pd.read_parquet(versions(project, "data/08_reporting/evaluation_summary.parquet")[-1])
    assert sorted(summary["variant"].unique()) == sorted(VARIANTS) and set(summary["seeds"]) == {2}
    runs = pd.read_parquet(versions(project, "data/08_reporting/evaluation_results.parquet")[-1])
    final = runs[runs["checkpoint"] == "final"]
    for variant in VARIANTS:  # the summary is the mean and std of the two seeds' rows
        hr = final.loc[final["variant"] == variant, "hr@10"]
        row = summary[(summary["variant"] == variant) & (summary["checkpoint"] == "final")].iloc[0]
        assert row["hr@10_mean"] == hr.mean() and abs(row["hr@10_std"] - hr.std(ddof=1)) < 1e-12
    strata = pd.read_parquet(versions(project, "data/08_reporting/evaluation_strata.parquet")[-1])
    assert set(strata["variant"]) == set(VARIANTS) and strata.groupby("variant")["samples"].sum().eq(60).all()
    report = (project / "data/08_reporting/report.md").read_text()
    assert "2 seeds [0, 1]" in report and all(v in report for v in VARIANTS)

    # one variant (both seeds) via --namespaces; the others' outputs are untouched
    out = kedro(project, "run", "--pipeline=compare", "--namespaces=grpo")
    assert ran_nodes(out) == {f"grpo.seed_{s}.{n}" for s in (0, 1) for n in ("train_policy", "evaluate_checkpoints")}
    assert len(versions(project, "data/06_models/rl/grpo.seed_0/checkpoints")) == 2
    assert len(versions(project, "data/06_models/rl/adagrpo.seed_0/checkpoints")) == 1
    # the reference models' seeds alone (they resume from their finished states)
    assert ran_nodes(kedro(project, "run", "--pipeline=compare", "--namespaces=sft,sasrec")) == seeded_references(0, 1)
    # then the report alone, on every saved evaluation
    assert ran_nodes(kedro(project, "run", "--pipeline=compare", "--nodes=evaluate.report")) == {"evaluate.report"}

    # the notebook loads the results through Kedro's IPython extension and draws the frontier
    nb = nbformat.read(REPO / "notebooks/frontier.ipynb", as_version=4)
    NotebookClient(nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(project)}}).execute()
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    assert any("image/png" in o.get("data", {}) for o in outputs)
    assert any("adagrpo.seed_1" in o.get("data", {}).get("text/plain", "") for o in outputs)

    # the plan of runs follows --params: exactly seed 5 (not in the configuration) trains and is reported
    out = kedro(project, "run", "--pipeline=compare", "--params", "adagrpo.seeds=[5]")
    assert ran_nodes(out) == ({f"{v}.seed_5.{n}" for v in VARIANTS for n in ("train_policy", "evaluate_checkpoints")}
                              | REFERENCES | seeded_references(0, 1))
    assert "6 variants x 1 seed [5]" in (project / "data/08_reporting/report.md").read_text()
    summary = json.loads((project / "data/08_reporting/summary.json").read_text())
    assert summary["models"]["adagrpo"]["seeds"] == 1 and "delta_vs_sft_continue" in summary["models"]["adagrpo"]["checkpoints"]["best"]
    # --env gpu has its own plan (seeds 0-4; conf/local is not read then, so the tiny sizes come as --params)
    tiny_rl = ("adagrpo.max_steps=2,adagrpo.checkpoint_every=2,adagrpo.eval_every=2,adagrpo.eval_users=10,"
               "adagrpo.batch_size=16,adagrpo.rollout.group_size=4,adagrpo.eval_beams=10")
    out = kedro(project, "run", "--env", "gpu", "--pipeline=compare", "--namespaces=sft_continue.seed_4", "--params", tiny_rl)
    assert ran_nodes(out) == {"sft_continue.seed_4.train_policy", "sft_continue.seed_4.evaluate_checkpoints"}
    out = kedro(project, "run", "--pipeline=compare", "--params", "adagrpo.seeds=5", check=False)
    assert "params:adagrpo does not validate, so the plan of runs cannot be built" in out and "seeds" in out
    assert "Completed node" not in out

    # kedro viz: the compare graph holds every run's nodes and checkpoint datasets
    kedro(project, "viz", "build")
    graph = json.loads((project / "build/api/pipelines/compare").read_text())
    tasks = {(n["name"], (n.get("modular_pipelines") or [""])[-1]) for n in graph["nodes"] if n["type"] == "task"}
    for v in VARIANTS:
        for s in (0, 1):
            assert ("train_policy", f"{v}.seed_{s}") in tasks and ("evaluate_checkpoints", f"{v}.seed_{s}") in tasks
    names = {n["name"] for n in graph["nodes"]}
    assert {f"{v}.seed_{s}.{d}" for v in VARIANTS for s in (0, 1) for d in ("checkpoints", "policy")} <= names
    assert {"sft_policy", "ranker_model", "reward_calibration", "report_md"} <= names
