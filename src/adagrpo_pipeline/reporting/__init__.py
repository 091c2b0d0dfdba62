"""The report of `evaluate` and `compare` (docs/architecture.md, "Evaluation protocol"),
Kedro-free, one module per kind of thing:

- `tables`: per-run rows, mean ± std over seeds, strata, every paired difference (statistics
  from `adagrpo_pipeline.stats`), the reference models over seeds, the flat MLflow figures;
- `figures`: training dynamics, the HR@10 / hallucination frontier, the strata;
- `text`: `report.md`, one section per table, and the reading of the CIs in words;
- `document`: `summary.json`;
- `report`: `build_report`, which computes the tables once and hands them to the others.
"""
