"""SFT, the ranker and the RL loop on 2 CPU processes (gloo, launched by Accelerate) against
1 process on the same global batches: the same weights within float tolerance, the same
logged statistics (the RL gate's admitted share exactly), and a state written by 2 processes
resumed by 1.

Tolerance: the 2-process gradient is the size-weighted mean of the two parts' gradients, summed
in another order than the 1-process one (float32 rounding, ~1e-7 relative), and Adam divides by
√v, which magnifies the rounding of a gradient entry that is nearly 0. Measured largest |Δ| (the
weights are ~1e-1): SFT 1.4e-7, the ranker 1.2e-7, RL 1.5e-7 (`adagrpo`), 1.4e-7 (`random_gate`),
1.2e-6 (`mix_matched`); a run with another sampler saw 1.3e-5 on one entry. Asserted: weights
|Δ| ≤ 1e-4; losses and metrics: relative 1e-4. The key bias of
`nn.MultiheadAttention` (the ranker's) has a gradient that is 0 in exact arithmetic (softmax
ignores a constant added to every key): its computed gradient is rounding noise alone, which
Adam turns into steps of ±lr, so there |Δ| ≤ lr × steps is all that holds (measured 4.8e-4 after
12 steps at lr 3e-3), and it changes no score. Dropout is off in these models: with dropout the
two runs draw different masks (each process has its own RNG stream) and no tolerance applies.
Batches of 31 split 16/15 over the two processes: the weighting of unequal parts is exercised."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from test_adagrpo_train import _reward, rl_data
from test_reward import ranker_data
from test_sft import sft_data

from adagrpo_pipeline.adagrpo.config import AdaGrpoParams, Variant
from adagrpo_pipeline.adagrpo.runs import RunSpec
from adagrpo_pipeline.adagrpo.train import train_rl
from adagrpo_pipeline.policy.config import SftParams
from adagrpo_pipeline.policy.model import PolicySize, build_policy
from adagrpo_pipeline.policy.sft import train_sft
from adagrpo_pipeline.reward.config import RankerTrainParams
from adagrpo_pipeline.reward.train import train_ranker
from adagrpo_pipeline.sasrec.config import SASRecSize
from adagrpo_pipeline.training import Ranks, launch
from adagrpo_pipeline.training.distributed import _free_port

from conftest import kedro, write_tiny_conf

pytestmark = pytest.mark.distributed

NO_DROPOUT = PolicySize(d_model=32, d_kv=8, d_ff=64, num_layers=1, num_decoder_layers=1, num_heads=4, dropout_rate=0.0)
ATOL = 1e-4


def _same_weights(a: torch.nn.Module, b: torch.nn.Module, noise_walk: float = 0.0) -> None:
    """|Δ| ≤ ATOL for every weight; ≤ `noise_walk` for attention key biases (module docstring)."""
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for k in sa:
        d = (sa[k].float() - sb[k].float()).abs()
        if k.endswith("in_proj_bias"):  # [query | key | value] biases
            n = d.numel() // 3
            assert float(d[n : 2 * n].max()) <= max(noise_walk, ATOL), k
            d = torch.cat([d[:n], d[2 * n :]])
        assert float(d.max()) <= ATOL, (k, float(d.max()))


def _same_history(a: pd.DataFrame, b: pd.DataFrame, counts: tuple[str, ...] = (), per_step: int = 0) -> None:
    """Same rows and columns, values within relative 1e-4; `counts`: shares of the `per_step`
    samples or rollouts of a step (admitted, invalid), the same count on both sides."""
    assert list(a.columns) == list(b.columns) and list(a["step"]) == list(b["step"])
    for col in a.columns:
        x, y = a[col].to_numpy(float), b[col].to_numpy(float)
        if col in counts:
            np.testing.assert_array_equal(np.round(x * per_step), np.round(y * per_step), err_msg=col)
        np.testing.assert_allclose(x, y, rtol=1e-4, atol=1e-6, err_msg=col)


# ---------------------------------------------------------------------------------------- SFT
def _sft_params(state_dir: Path, **kw) -> SftParams:
    base = dict(model=NO_DROPOUT, max_items=4, batch_size=31, lr=5e-3, warmup_steps=2, max_steps=8, eval_every=4,
                eval_beams=10, patience=5, checkpoint_every=4, device="cpu", seed=0, state_dir=str(state_dir))
    return SftParams(**{**base, **kw})


def _sft(data, params: SftParams):
    _, trie, layout, encoder, train, valid = data
    return train_sft(build_policy(layout, params.model, params.seed), encoder, train, valid, trie, params)


@pytest.fixture(scope="module")
def sft():
    return sft_data()


def test_sft_on_two_processes_trains_the_same_weights_as_one(sft, tmp_path: Path) -> None:
    one = _sft(sft, _sft_params(tmp_path / "one"))
    logged: list[tuple[int, dict]] = []
    two = _sft(sft, _sft_params(tmp_path / "two", processes=2))
    _same_weights(one.model, two.model)
    _same_history(one.history, two.history)
    assert one.history["valid_ndcg@10"].tolist() == two.history["valid_ndcg@10"].tolist()
    assert (one.best_step, two.best_step) != (-1, -1) and one.best_step == two.best_step
    assert two.resumed_from == 8  # this process read the launched processes' finished run
    # what the launched run logs reaches the caller's log_fn once, from this process
    again = train_sft(build_policy(sft[2], NO_DROPOUT, 0), sft[3], sft[4], sft[5], sft[1],
                      _sft_params(tmp_path / "two", processes=2), log_fn=lambda m, s: logged.append((s, m)))
    assert [s for s, _ in logged] == [4, 8] and logged[1][1]["train_loss"] == pytest.approx(
        float(two.history["train_loss"].iloc[1]))
    assert again.resumed_from == 8


def _crash_sft_at_step_6(data, params: SftParams) -> None:
    """Runs inside the 2 launched processes: rank 0's logger fails at step 6's evaluation,
    after the state of step 4 was written."""
    _, trie, layout, encoder, train, valid = data

    def crash(metrics: dict, step: int) -> None:
        if step == 6:
            raise RuntimeError("interrupted")

    train_sft(build_policy(layout, params.model, params.seed), encoder, train, valid, trie, params, log_fn=crash)


def test_a_two_process_sft_state_resumes_on_one_process(sft, tmp_path: Path) -> None:
    whole = _sft(sft, _sft_params(tmp_path / "whole", eval_every=2))
    with pytest.raises(Exception):  # noqa: B017 - the launcher wraps the worker's error
        launch(_crash_sft_at_step_6, (sft, _sft_params(tmp_path / "cut", eval_every=2)), 2)
    resumed = _sft(sft, _sft_params(tmp_path / "cut", eval_every=2))
    assert resumed.resumed_from == 4
    _same_weights(whole.model, resumed.model)
    _same_history(whole.history, resumed.history)


# ------------------------------------------------------------------------------------- ranker
def _ranker(data, state_dir: Path, processes: int):
    t, events, req = data
    p = RankerTrainParams(model=SASRecSize(d_model=16, num_layers=1, num_heads=2, d_ff=32, dropout=0.0),
                          max_history=8, batch_size=31, max_steps=12, eval_every=4, patience=5, seed=0, device="cpu",
                          checkpoint_every=4, state_dir=str(state_dir), processes=processes)
    return train_ranker(len(t.items), events, req.subset(req.split == "train"), req.subset(req.split == "valid"), p)


def test_the_ranker_on_two_processes_trains_the_same_weights_as_one(tmp_path: Path) -> None:
    data = ranker_data()
    one, two = _ranker(data, tmp_path / "one", 1), _ranker(data, tmp_path / "two", 2)
    _same_weights(one.model, two.model, noise_walk=3e-3 * 12)  # lr × steps
    _same_history(one.history, two.history)
    assert one.best_step == two.best_step and two.best_auc == pytest.approx(one.best_auc, abs=1e-6)


# ----------------------------------------------------------------------------------------- RL
def _rl(data, variant: Variant, state_dir: Path, processes: int, **kw):
    trie, layout, encoder, train, valid = data
    p = AdaGrpoParams(**{**dict(batch_size=31, lr=1e-3, warmup_steps=0, lr_schedule="constant", max_steps=4,
                                checkpoint_every=2, eval_every=2, eval_users=10, eval_beams=10, dropout=False,
                                device="cpu", seed=0, state_dir=str(state_dir),
                                rollout={"group_size": 4, "constrained": True},
                                processes=processes), **kw})
    return train_rl(build_policy(layout, NO_DROPOUT, 0), encoder, train, valid, trie, _reward(),
                    RunSpec.of(variant, 0, variant.name), p, state_dir)


@pytest.mark.parametrize("variant", [Variant("adagrpo"), Variant("random_gate"), Variant("mix_matched")])
def test_rl_on_two_processes_trains_the_same_weights_as_one(tmp_path: Path, variant: Variant) -> None:
    data = rl_data()
    one, two = _rl(data, variant, tmp_path / "one", 1), _rl(data, variant, tmp_path / "two", 2)
    # the rollouts, their rewards and the gate are those of one process, row for row
    _same_history(one.history, two.history, counts=("admitted", "pass_pol", "pass_rew"), per_step=31)
    assert 0 < one.history["admitted"].iloc[1:].mean() < 1  # the gate decided something
    _same_weights(one.model, two.model)
    assert (one.resumed_from, two.resumed_from) == (0, 4)  # this process read the launched processes' run
    assert sorted(two.checkpoints) == [0, 2, 4] == sorted(one.checkpoints)


def test_ranks_split_a_batch_into_contiguous_parts_and_weight_their_means() -> None:
    ranks = [Ranks(r, 3) for r in range(3)]
    rows = np.arange(10, 20)
    parts = [r.part(rows) for r in ranks]
    assert [p.rows.tolist() for p in parts] == [[10, 11, 12, 13], [14, 15, 16], [17, 18, 19]]
    assert [(p.span.start, p.span.stop, p.total) for p in parts] == [(0, 4, 10), (4, 7, 10), (7, 10, 10)]
    assert Ranks().part(rows).rows.tolist() == rows.tolist()
    with pytest.raises(ValueError, match="processes .3. must not exceed batch_size .2."):
        SftParams(batch_size=2, processes=3)


# ------------------------------------------------------------------- kedro run on every process
@pytest.mark.slow
def test_kedro_run_under_torchrun_trains_on_two_processes_and_rank_0_alone_writes(project: Path, mlflow_db: Path) -> None:
    """`accelerate launch` (multi-GPU / multi-node) starts every process with torch's elastic
    launcher; on CPU it is torchrun itself (`accelerate launch --cpu` has no multi-process mode
    without MPI). Every process runs `kedro run`; the SFT loop shares the work; only rank 0
    writes the catalog outputs, the manifest and the one MLflow run."""
    import mlflow

    write_tiny_conf(project)
    kedro(project, "run", "--pipeline=ingest")
    kedro(project, "run", "--pipeline=tokenize")
    env = {**os.environ, "KEDRO_DISABLE_TELEMETRY": "true"}
    torchrun = str(Path(sys.executable).with_name("torchrun"))
    proc = subprocess.run([torchrun, "--nproc_per_node", "2", "--master_port", str(_free_port()), "-m", "kedro", "run",
                           "--pipeline=sft"], cwd=project, env=env, capture_output=True, text=True, timeout=600,
                          stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    log = proc.stdout + proc.stderr
    assert "rank 1: 3 outputs kept in memory, rank 0 writes them" in log
    assert len(list((project / "data/06_models/sft_policy").iterdir())) == 1  # one version, rank 0's
    assert len(list((project / "data/09_commits").glob("*__sft.json"))) == 1
    mlflow.set_tracking_uri(f"sqlite:///{mlflow_db}")
    runs = mlflow.search_runs(experiment_names=["adagrpo_pipeline"], filter_string="tags.`mlflow.runName` = 'sft'")
    assert len(runs) == 1 and runs.iloc[0]["status"] == "FINISHED"
    # the same training as the node launching 2 processes itself
    kedro(project, "run", "--pipeline=sft", "--params", "sft.processes=2,sft.state_dir=data/06_models/sft_state_p2")
    versions = sorted((project / "data/08_reporting/sft_history.parquet").iterdir())
    torchrun_history, launched = (pd.read_parquet(v / "sft_history.parquet") for v in versions)
    _same_history(torchrun_history, launched)
