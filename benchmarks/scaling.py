"""How the project scales with the size of the logs: wall time and peak memory of each stage on
the `synthetic` source at growing numbers of events (clicks), on this machine.

    python benchmarks/scaling.py --events 1e5 1e6 1e7 --out benchmarks/results/scaling
    python benchmarks/scaling.py --events 1e5 --quick      # a smoke run (tiny SFT, few users)

Each size gets a Kedro project of its own (this repo's conf/, an empty data/, its own MLflow
store) and every stage runs in a fresh process, so each peak resident set (ru_maxrss of that
process, from os.wait4) is the stage's own:
- simulate:  the simulator alone (library call), the logs in memory;
- ingest:    `kedro run --pipeline=ingest` (simulation again, validation, preparation, exposure,
             the versioned tables written);
- tokenize:  `kedro run --pipeline=tokenize`;
- sft_data:  one epoch of SFT batches read and encoded, no model: streamed from the
             `train_sequences` file (`training.samples.ParquetSamples`, what `kedro run` does;
             windows of 200,000 rows here, so that every size measured is several windows),
             and for comparison the ordinary way, the whole file read into a DataFrame
             (`pandas.read_parquet`) and batched from memory; the bound: reading the file's bytes;
- sft_epoch: `kedro run --pipeline=sft` for one epoch (steps = training samples / batch size,
             validation once at the end on at most `--eval-users` users), where it fits the time
             budget (`--sft-max-steps`); otherwise steps/s from a 200-step run and the epoch's
             time extrapolated from it (marked `extrapolated`);
- evaluate:  the SFT policy's test evaluation (unconstrained and constrained beam search, 40
             beams) on at most `--eval-users` test users, users/s.
Sizes: n_users is set so the simulator logs ≈ the asked number of clicks (a 2,000-user probe
measures clicks per user); n_items and the rest are the simulator's defaults but `--n-items`.
Writes `<out>.json` (every figure), `<out>.md` (the table) and `<out>.png` (the plot).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
KEDRO = str(Path(sys.executable).with_name("kedro"))
LAYERS = ("01_raw", "02_intermediate", "03_primary", "04_feature", "05_model_input", "06_models", "07_model_output",
          "08_reporting", "09_commits")


def _measured(cmd: list[str], cwd: Path, timeout: float) -> dict:
    """Run `cmd`; its wall seconds, peak RSS (MB) and, for `--child` commands, its JSON line."""
    env = {**os.environ, "KEDRO_DISABLE_TELEMETRY": "true", "PYTHONUNBUFFERED": "1"}
    log = tempfile.NamedTemporaryFile("w+", suffix=".log", delete=False)
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    deadline = t0 + timeout
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            break
        if time.perf_counter() > deadline:
            proc.kill()
            pid, status, usage = os.wait4(proc.pid, 0)
            return {"seconds": time.perf_counter() - t0, "status": "timeout", "log": log.name}
        time.sleep(0.2)
    out = {"seconds": round(time.perf_counter() - t0, 1), "peak_rss_mb": round(usage.ru_maxrss / 1024, 1),
           "status": "ok" if os.waitstatus_to_exitcode(status) == 0 else f"exit {os.waitstatus_to_exitcode(status)}"}
    log.seek(0)
    text = log.read()
    if out["status"] != "ok":
        out["error"] = text[-2000:]
    else:  # a failed stage's log stays on disk for reading; a passed one's is not needed
        os.unlink(log.name)
    for line in reversed(text.splitlines()):
        if line.startswith("{"):
            out.update(json.loads(line))
            break
    return out


def _project(dest: Path) -> Path:
    shutil.rmtree(dest, ignore_errors=True)
    shutil.copytree(ROOT / "conf", dest / "conf", ignore=shutil.ignore_patterns("local"))
    (dest / "conf" / "local").mkdir()
    for name in ("pyproject.toml",):
        shutil.copy(ROOT / name, dest / name)
    (dest / "src").mkdir()  # the package is installed in the environment
    for layer in LAYERS:
        (dest / "data" / layer).mkdir(parents=True)
    return dest


# ---------------------------------------------------------------------------------- children
def _child_simulate(synthetic: dict) -> dict:
    from adagrpo_pipeline.recdata.simulator import SyntheticParams, simulate

    raw = simulate(SyntheticParams(**synthetic))
    return {"events": len(raw.interactions), "impressions": len(raw.impressions), "users": synthetic["n_users"]}


def _child_sft_data(project: str, mode: str, batch_size: int, window_rows: int = 200_000) -> dict:
    """One epoch of SFT batches from the committed `train_sequences`, encoded as training would;
    streamed with windows of `window_rows` rows (below the sizes measured, so that the stream
    holds at most two windows at every size: what `load_args.window_rows` sets in the catalog)."""
    import pandas as pd
    from kedro.framework.session import KedroSession
    from kedro.framework.startup import bootstrap_project

    from adagrpo_pipeline.policy.data import item_token_table
    from adagrpo_pipeline.policy.model import HistoryEncoder, PolicyLayout
    from adagrpo_pipeline.semantic_ids.vocab import SidVocab
    from adagrpo_pipeline.training.samples import FrameSamples, ParquetSamples

    bootstrap_project(Path(project))
    with KedroSession.create(project_path=Path(project)) as session:
        catalog = session.load_context().catalog
        stream = catalog.load("train_sequences")  # a ParquetSamples: nothing read yet
        vocab = SidVocab.from_json(catalog.load("sid_vocab"))
        tokens = item_token_table(catalog.load("semantic_ids"), vocab)
        p = catalog.load("params:sft")
    encoder = HistoryEncoder(PolicyLayout(vocab, p.max_items, p.user_buckets, p.encoder_input), tokens)
    t0 = time.perf_counter()
    if mode == "bound":
        with open(stream.path, "rb") as fh:
            while fh.read(1 << 24):
                pass
        return {"rows": len(stream), "file_mb": round(os.path.getsize(stream.path) / 2**20, 1),
                "loop_seconds": round(time.perf_counter() - t0, 2)}
    samples = ParquetSamples(stream.path, window_rows) if mode == "stream" else FrameSamples(pd.read_parquet(stream.path))
    steps = max(1, len(samples) // batch_size)
    seen = 0
    for step in range(steps):
        batch = samples.fetch(samples.rows(step, batch_size, 0))
        x, _ = encoder(batch.histories, batch.users)
        seen += len(batch.targets)
    assert seen == steps * batch_size
    return {"rows": len(samples), "steps": steps, "loop_seconds": round(time.perf_counter() - t0, 2),
            "windows": len(samples.windows(0, 0)) if mode == "stream" else 1,
            "window_rows": window_rows if mode == "stream" else None, "checksum": int(x.sum())}


def _child_evaluate(project: str, max_users: int) -> dict:
    import torch
    from kedro.framework.session import KedroSession
    from kedro.framework.startup import bootstrap_project

    from adagrpo_pipeline.policy.data import load_checked_policy, seen_before_holdout
    from adagrpo_pipeline.policy.evaluation import evaluate_policy
    from adagrpo_pipeline.semantic_ids.trie import SidTrie

    bootstrap_project(Path(project))
    with KedroSession.create(project_path=Path(project)) as session:
        catalog = session.load_context().catalog
        test = catalog.load("test_sequences")
        model, encoder = load_checked_policy(catalog.load("sft_policy"), catalog.load("semantic_ids"),
                                             catalog.load("sid_vocab"))
        trie = SidTrie.from_tensors(catalog.load("sid_trie"))
        interactions = catalog.load("interactions")
    test = test.iloc[:max_users].reset_index(drop=True)
    seen = seen_before_holdout(interactions, test["user_id"].to_numpy(), held_out=1)
    t0 = time.perf_counter()
    metrics, _ = evaluate_policy(model, encoder, trie, test, [10], 40, 128, torch.device("cpu"), seen)
    seconds = time.perf_counter() - t0
    return {"users": len(test), "loop_seconds": round(seconds, 1), "users_per_s": round(len(test) / seconds, 1),
            "hr@10": round(metrics["hr@10"], 4)}


# ---------------------------------------------------------------------------------- the driver
def _kedro_params(d: dict) -> str:
    return ",".join(f"{k}={v}" for k, v in d.items())


def _clicks_per_user(synthetic: dict) -> float:
    probe = _measured([sys.executable, __file__, "--child", json.dumps(["simulate", {**synthetic, "n_users": 2000}])],
                      ROOT, 600)
    return probe["events"] / 2000


def run_size(events: float, a: argparse.Namespace, per_user: float, workdir: Path) -> dict:
    n_users = max(20, round(events / per_user))
    synthetic = {"n_users": n_users, "n_items": a.n_items, "seed": 0}
    project = _project(workdir / f"events_{int(events)}")
    row: dict = {"target_events": int(events), "n_users": n_users, "n_items": a.n_items}
    py = [sys.executable, __file__, "--child"]
    row["simulate"] = _measured([*py, json.dumps(["simulate", synthetic])], ROOT, a.timeout)
    ingest = {"ingest.source": "synthetic", **{f"ingest.synthetic.{k}": v for k, v in synthetic.items()}}
    row["ingest"] = _measured([KEDRO, "run", "--pipeline=ingest", "--params", _kedro_params(ingest)], project, a.timeout)
    row["tokenize"] = _measured([KEDRO, "run", "--pipeline=tokenize"], project, a.timeout)
    for mode in ("bound", "stream", "pandas"):
        row[f"sft_data_{mode}"] = _measured([*py, json.dumps(["sft_data", str(project), mode, a.batch_size])], ROOT,
                                            a.timeout)
    import pyarrow.parquet as pq

    files = sorted((project / "data/05_model_input/train_sequences.parquet").glob("*/train_sequences.parquet"))
    train_rows = pq.ParquetFile(files[-1]).metadata.num_rows if files else 0
    row["train_samples"] = train_rows
    epoch_steps = max(1, train_rows // a.batch_size)
    steps = epoch_steps if epoch_steps <= a.sft_max_steps else 200
    sft = {"sft.max_steps": steps, "sft.eval_every": steps, "sft.checkpoint_every": steps, "sft.warmup_steps": min(100, steps // 2),
           "sft.batch_size": a.batch_size, "sft.eval_users": a.eval_users, "sft.patience": 1}
    if a.quick:
        sft.update({"sft.model.d_model": 32, "sft.model.d_ff": 64, "sft.model.num_layers": 1, "sft.model.num_decoder_layers": 1})
    r = _measured([KEDRO, "run", "--pipeline=sft", "--params", _kedro_params(sft)], project, a.timeout)
    r.update(steps=steps, epoch_steps=epoch_steps, extrapolated=steps < epoch_steps)
    if r["status"] == "ok":
        r["epoch_seconds"] = round(r["seconds"] * epoch_steps / steps, 1)  # whole run, set-up included
    row["sft_epoch"] = r
    row["evaluate"] = _measured([*py, json.dumps(["evaluate", str(project), a.eval_users])], ROOT, a.timeout)
    if not a.keep:
        shutil.rmtree(project, ignore_errors=True)
    return row


def _table(rows: list[dict]) -> str:
    head = ("| events (clicks) | users | simulate s / MB | ingest s / MB | tokenize s / MB | SFT data, streamed: s / MB "
            "| SFT data, pandas: s / MB | SFT epoch s / MB | evaluate users/s / MB |")
    lines = [head, "|" + " --- |" * (head.count("|") - 1)]

    def cell(r: dict, key: str = "seconds") -> str:
        if r.get("status") != "ok":
            return r.get("status", "—")
        return f"{r[key]} / {r['peak_rss_mb']:.0f}"

    for row in rows:
        e = row["sft_epoch"]
        epoch = cell(e, "epoch_seconds") + (" (extrapolated from %d steps)" % e["steps"] if e.get("extrapolated") else "")
        lines.append(f"| {row['simulate'].get('events', '—'):,} | {row['n_users']:,} | {cell(row['simulate'])} | "
                     f"{cell(row['ingest'])} | {cell(row['tokenize'])} | {cell(row['sft_data_stream'], 'loop_seconds')} | "
                     f"{cell(row['sft_data_pandas'], 'loop_seconds')} | {epoch} | "
                     f"{cell(row['evaluate'], 'users_per_s')} |")
    return "\n".join(lines)


def _plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    stages = [("simulate", "seconds"), ("ingest", "seconds"), ("tokenize", "seconds"),
              ("sft_data_stream", "loop_seconds"), ("sft_data_pandas", "loop_seconds"), ("sft_epoch", "epoch_seconds")]
    fig, (ax_t, ax_m) = plt.subplots(1, 2, figsize=(11, 4))
    for stage, key in stages:
        pts = [(r["simulate"]["events"], r[stage]) for r in rows if r[stage].get("status") == "ok" and key in r[stage]]
        if pts:
            ax_t.plot([p[0] for p in pts], [p[1][key] for p in pts], marker="o", label=stage)
            ax_m.plot([p[0] for p in pts], [p[1]["peak_rss_mb"] for p in pts], marker="o", label=stage)
    for ax, label in ((ax_t, "wall seconds"), (ax_m, "peak resident MB")):
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("events (clicks)")
        ax.set_ylabel(label)
        ax.grid(True, which="both", alpha=0.3)
    ax_m.legend(fontsize=8)
    fig.suptitle("Scaling on the synthetic source (this machine)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--events", type=float, nargs="+", default=[1e5, 1e6, 1e7])
    ap.add_argument("--n-items", type=int, default=2000)
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--eval-users", type=int, default=2000)
    ap.add_argument("--sft-max-steps", type=int, default=4000, help="longest SFT epoch run in full")
    ap.add_argument("--timeout", type=float, default=900, help="seconds per stage")
    ap.add_argument("--out", default=str(ROOT / "benchmarks/results/scaling"))
    ap.add_argument("--workdir", default=tempfile.gettempdir())
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--keep", action="store_true", help="keep each size's project")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        kind, *args = json.loads(a.child)
        print(json.dumps({"simulate": _child_simulate, "sft_data": _child_sft_data, "evaluate": _child_evaluate}[kind](*args)))
        return
    per_user = _clicks_per_user({"n_items": a.n_items, "seed": 0})
    print(json.dumps({"clicks_per_user": per_user}), flush=True)
    rows = []
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    for events in a.events:
        row = run_size(events, a, per_user, Path(a.workdir) / "adagrpo_scaling")
        print(json.dumps(row), flush=True)
        rows.append(row)
        out.with_suffix(".json").write_text(json.dumps({"clicks_per_user": per_user, "sizes": rows}, indent=1))
        out.with_suffix(".md").write_text(_table(rows) + "\n")
    _plot(rows, out.with_suffix(".png"))
    print(_table(rows))


if __name__ == "__main__":
    main()
