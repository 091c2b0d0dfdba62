"""The main job's time by stage and node, largest first, from the node durations that kedro-viz's
run hook records on every default `kedro run` (`.viz/kedro_pipeline_events.json`, the file
`kedro viz` reads to show run times).

    scripts/dev.sh run && python benchmarks/stages.py
    python benchmarks/stages.py --events A/.viz/kedro_pipeline_events.json --before B/.viz/kedro_pipeline_events.json

A stage is a node's pipeline namespace (ingest, tokenize, reward, sft, adagrpo, evaluate).
`--before`: another run's events, printed beside (seconds before, after, after / before). The
last line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from datetime import datetime
from pathlib import Path

from common import ROOT


def read_run(path: Path) -> dict:
    """Node seconds, stage seconds and the pipeline's wall seconds of one run's events file."""
    if not path.is_file():
        raise SystemExit(f"{path}: no events file; run the main job first (`scripts/dev.sh run`)")
    events = json.loads(path.read_text())
    nodes = {e["node"]: float(e["duration"]) for e in events if e.get("event") == "after_node_run"}
    if not nodes:
        raise SystemExit(f"{path}: no node durations (was the run a default, whole-pipeline `kedro run`?)")
    stamps = {e["event"]: datetime.fromisoformat(e["timestamp"]) for e in events
              if e.get("event") in ("before_pipeline_run", "after_pipeline_run")}
    stages: dict[str, float] = defaultdict(float)
    for node, seconds in nodes.items():
        stages[node.split(".")[0]] += seconds
    wall = (stamps["after_pipeline_run"] - stamps["before_pipeline_run"]).total_seconds() if len(stamps) == 2 else None
    return {"nodes": nodes, "stages": dict(stages), "wall_s": wall, "nodes_s": sum(nodes.values())}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=Path, default=ROOT / ".viz/kedro_pipeline_events.json")
    ap.add_argument("--before", type=Path, default=None)
    ap.add_argument("--top", type=int, default=12, help="nodes shown")
    a = ap.parse_args()
    run = read_run(a.events)
    before = read_run(a.before) if a.before else None
    total = run["nodes_s"]

    def row(name: str, seconds: float, old: float | None) -> str:
        text = f"{name:<42} {seconds:8.1f} s {100 * seconds / total:5.1f}%"
        if old is not None:
            text += f"   before {old:8.1f} s   after/before {seconds / old if old else float('nan'):.2f}"
        return text

    print(f"pipeline wall {run['wall_s']:.1f} s, nodes {total:.1f} s" +
          (f" (before: wall {before['wall_s']:.1f} s, nodes {before['nodes_s']:.1f} s)" if before else ""))
    print("by stage, largest first:")
    for stage, seconds in sorted(run["stages"].items(), key=lambda kv: -kv[1]):
        print("  " + row(stage, seconds, before["stages"].get(stage) if before else None))
    print(f"largest {a.top} nodes:")
    for node, seconds in sorted(run["nodes"].items(), key=lambda kv: -kv[1])[: a.top]:
        print("  " + row(node, seconds, before["nodes"].get(node) if before else None))
    out = {"wall_s": run["wall_s"], "nodes_s": round(total, 1),
           "stages_s": {k: round(v, 1) for k, v in sorted(run["stages"].items(), key=lambda kv: -kv[1])},
           "nodes_s_largest": {k: round(v, 1) for k, v in sorted(run["nodes"].items(), key=lambda kv: -kv[1])[: a.top]}}
    if before:
        out["before"] = {"wall_s": before["wall_s"], "nodes_s": round(before["nodes_s"], 1),
                         "stages_s": {k: round(v, 1) for k, v in before["stages"].items()}}
    print(json.dumps(out))


if __name__ == "__main__":
    main()
