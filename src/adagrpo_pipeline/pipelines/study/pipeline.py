"""`study`: the controlled study (docs/architecture.md, "The controlled study";
`adagrpo_pipeline.study.config` for the plan).

Per bias level, namespace `study.<level>`: the project's `ingest`, `tokenize` and `sft`
pipelines as templates (the simulator with that level's exposure bias; parameters
`params:study_settings.<level>.*`), the oracle reward, and the SFT policy's test outcomes. Per
level and information level, namespace `study.<level>.<information>`: the ranker's view of the
latent vectors, the `reward` pipeline's ranker, calibration, report and informativeness, the SFT
policy's diagnostics (ranker and oracle) on test. Every RL run in its own namespace: the `adagrpo`
stage's training node and the evaluation of its final and valid-chosen checkpoints. One report
node over everything (`data/08_reporting/study/`).
"""

from __future__ import annotations

from kedro.pipeline import Pipeline, node, pipeline

from adagrpo_pipeline.pipelines import ingest, reward, sft, tokenize
from adagrpo_pipeline.pipelines.adagrpo.nodes import train_policy
from adagrpo_pipeline.study.config import ORACLE, StudyPlan, StudyRun, setting

from . import nodes as n

STUDY = n.STUDY_PARAMS
LEVEL_TABLES = ["interactions", "impressions", "items", "users", "ground_truth_relevance", "train_sequences",
                "valid_sequences", "test_sequences", "item_embeddings", "semantic_ids", "sid_vocab", "sid_trie", "sft_policy",
                "oracle_model", "oracle_calibration"]
REWARD_NODES = ("reward.train_reward_ranker", "reward.calibrate_reward", "reward.report_reward",
                "reward.measure_reward_informativeness")


# Kedro prefixes a namespaced pipeline's parameters with the namespace unless they are mapped, so
# every shared parameter below is mapped, to itself where its name stays.


def _settings(level: str, *keys: str) -> str:
    return "params:study_settings." + ".".join((level, *keys))


def level_pipeline(level: str) -> Pipeline:
    """Simulate → ingest → tokenize → SFT, the oracle and the SFT policy's outcomes."""
    stages = ingest.create_pipeline() + tokenize.create_pipeline() + sft.create_pipeline()
    own = Pipeline([
        node(n.oracle_reward, ["ground_truth_relevance", "users", "items"], ["oracle_model", "oracle_calibration"],
             name="oracle_reward"),
        node(n.evaluate_sft, ["sft_policy", "oracle_model", "test_sequences", "interactions", "semantic_ids", "sid_vocab",
                              "sid_trie", STUDY, _settings(level, ORACLE, "reward")], "sft_outcomes",
             name="evaluate_sft", tags="evaluation"),
    ])
    return pipeline(stages + own, namespace=setting(level),
                    parameters={"params:ingest": _settings(level, "ingest"), "params:tokenize": "params:study_settings.tokenize",
                                "params:sft": _settings(level, "sft"), STUDY: STUDY,
                                _settings(level, ORACLE, "reward"): _settings(level, ORACLE, "reward")})


def ranker_pipeline(level: str, info: str) -> Pipeline:
    """The ranker of one information level: its inputs, training, calibration, report,
    informativeness, and the SFT policy's diagnostics on test."""
    reward_nodes = reward.create_pipeline().only_nodes(*REWARD_NODES)
    own = Pipeline([
        node(n.ranker_inputs, ["level_users", "level_items", _settings(level, info, "attribute_noise"), STUDY],
             ["users", "items"], name="ranker_inputs"),
        node(n.sft_diagnostics, ["sft_policy", "ranker_model", "reward_calibration", "oracle_model", "test_sequences",
                                 "semantic_ids", "sid_vocab", "sid_trie", "params:adagrpo", "params:reward", STUDY],
             "sft_diagnostics", name="sft_diagnostics", tags="evaluation"),
    ])
    shared = {t: f"{setting(level)}.{t}" for t in LEVEL_TABLES if t not in ("users", "items")}
    shared.update({"level_users": f"{setting(level)}.users", "level_items": f"{setting(level)}.items"})
    return pipeline(reward_nodes + own, namespace=setting(level, info),
                    inputs={k: v for k, v in shared.items() if k in (reward_nodes + own).inputs()},
                    parameters={"params:reward": _settings(level, info, "reward"),
                                "params:adagrpo": "params:study_settings.adagrpo", STUDY: STUDY,
                                _settings(level, info, "attribute_noise"): _settings(level, info, "attribute_noise")})


def run_pipeline(run: StudyRun) -> Pipeline:
    """One RL run (the `adagrpo` stage's node) and its test outcomes."""
    ranker = setting(run.level, run.reward)
    level = setting(run.level)
    rewarded_by = {"ranker_model": f"{level}.oracle_model", "reward_calibration": f"{level}.oracle_calibration"} \
        if run.reward == ORACLE else {"ranker_model": f"{ranker}.ranker_model", "reward_calibration": f"{ranker}.reward_calibration"}
    reward_params = _settings(run.level, run.reward, "reward")
    template = Pipeline([
        node(train_policy, {"sft_policy": "sft_policy", "ranker_model": "ranker_model",
                            "reward_calibration": "reward_calibration", "train_sequences": "train_sequences",
                            "valid_sequences": "valid_sequences", "interactions": "interactions",
                            "semantic_ids": "semantic_ids", "sid_vocab": "sid_vocab", "sid_trie": "sid_trie",
                            "params": "params:adagrpo", "reward_params": reward_params, "run": "params:run",
                            "oracle_model": "oracle_model"},
             ["policy", "checkpoints", "training_history"], name="train_policy", tags="training"),
        node(n.evaluate_run, ["checkpoints", "training_history", "oracle_model", "test_sequences", "interactions",
                              "semantic_ids", "sid_vocab", "sid_trie", STUDY, reward_params, "params:run"],
             "study_outcomes", name="evaluate_run", tags="evaluation"),
    ])
    inputs = {t: f"{level}.{t}" for t in template.inputs() if not t.startswith("params:")}
    inputs.update(rewarded_by)
    return pipeline(template, namespace=run.spec.namespace, inputs=inputs,
                    parameters={"params:adagrpo": "params:study_settings.adagrpo", reward_params: reward_params,
                                STUDY: STUDY, "params:run": f"params:runs.{run.spec.namespace}"},
                    tags=["rl", run.variant])


def create_pipeline(plan: StudyPlan | None) -> Pipeline:
    if plan is None or not plan.params.levels:
        return Pipeline([])
    per_level = sum((level_pipeline(b.name) for b in plan.params.levels), Pipeline([]))
    rankers = sum((ranker_pipeline(b.name, i.name) for b in plan.params.levels for i in plan.params.information),
                  Pipeline([]))
    runs = sum((run_pipeline(r) for r in plan.runs), Pipeline([]))
    report = n.ReportNode(plan)  # given the plan here: it reads no dataset name
    report_pipeline = pipeline([node(report.report, report.inputs(),
                                     ["study_summary", "study_table", "study_premise", "study_delta_plot",
                                      "study_strata_plot", "study_markdown"], name="report")],
                               namespace="study", prefix_datasets_with_namespace=False)
    return (per_level + rankers + runs + report_pipeline).tag("study")
