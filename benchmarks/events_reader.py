"""The `events` source's CSV reader against the ordinary alternative and the bound.

    python benchmarks/events_reader.py                  # 1,000,000 interaction rows
    python benchmarks/events_reader.py --rows 3000000

Ours: `recdata.events.read_events_file` (stdlib `csv`, one pass that also yields each record's
file line, repeated headers, shifted and short rows) followed by the typing `read_events` does
(ids and text as strings, timestamps to UTC seconds). The alternative a user would pick:
`pandas.read_csv(dtype=str, keep_default_na=False)` (the C parser; ids kept as written, no file
lines, no row checks) plus the same timestamp conversion. The bound: reading and decoding the
file's text (`f.read()`), the work no reader can skip. Same file, same run, best of `--repeats`.
Prints both ratios and one JSON line.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from adagrpo_pipeline.recdata.events import read_events_file, timestamps


def _best(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--repeats", type=int, default=3)
    a = ap.parse_args()
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"user_id": rng.integers(0, 100_000, a.rows).astype(str),
                          "item_id": np.char.zfill(rng.integers(0, 20_000, a.rows).astype(str), 6),
                          "timestamp": 1_700_000_000 + rng.integers(0, 10**7, a.rows),
                          "event": rng.choice(["click", "view", "purchase"], a.rows)})
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "interactions.csv"
        frame.to_csv(path, index=False)
        size_mb = path.stat().st_size / 1e6

        def ours() -> pd.DataFrame:
            df = read_events_file(path, "utf-8", problems := [])
            df["timestamp"] = timestamps(df["timestamp"], "auto", path, problems).seconds
            assert not problems
            return df

        def pandas_csv() -> pd.DataFrame:
            df = pd.read_csv(path, dtype=str, keep_default_na=False)
            df["timestamp"] = pd.to_numeric(df["timestamp"]).astype("int64")
            return df

        def bound() -> int:
            with open(path, encoding="utf-8", newline="") as fh:
                return len(fh.read())

        a_ours, b_pandas = ours(), pandas_csv()
        same = (a_ours[["user_id", "item_id", "event"]].to_numpy() == b_pandas[["user_id", "item_id", "event"]].to_numpy()).all() \
            and (a_ours["timestamp"].to_numpy(np.int64) == b_pandas["timestamp"].to_numpy()).all()
        t_ours, t_pandas, t_bound = (_best(f, a.repeats) for f in (ours, pandas_csv, bound))
    out = {"rows": a.rows, "file_mb": round(size_mb, 1), "ours_s": round(t_ours, 3), "pandas_read_csv_s": round(t_pandas, 3),
           "bound_read_text_s": round(t_bound, 3), "pandas_over_ours": round(t_pandas / t_ours, 3),
           "bound_over_ours": round(t_bound / t_ours, 3), "same_values": bool(same)}
    print(f"{a.rows:,} rows ({size_mb:.1f} MB): ours {t_ours:.2f} s, pandas.read_csv {t_pandas:.2f} s "
          f"(ours at {t_pandas / t_ours:.2f}x its speed), bare text read {t_bound:.2f} s ({t_bound / t_ours:.2f}x); "
          f"same values: {same}")
    print(json.dumps(out))


if __name__ == "__main__":
    main()
