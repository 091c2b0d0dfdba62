"""Training samples saved as parquet (like `pandas.ParquetDataset`, in row groups) and loaded as a
lazy handle that training streams (`training.samples.ParquetSamples`), so `kedro run` never holds
the whole training set in memory."""

from __future__ import annotations

from typing import Any

from kedro.io.core import get_filepath_str
from kedro_datasets.pandas import ParquetDataset

from adagrpo_pipeline.training.samples import ParquetSamples


class SamplesDataset(ParquetDataset):
    """`save`: a DataFrame of samples (`user_id`, `history`, `target`), written with pyarrow in
    row groups of `save_args.row_group_size` rows (default 100,000). `load`: a `ParquetSamples`
    over the version to load, read a window of `load_args.window_rows` rows (default 1,000,000)
    at a time; `.to_pandas()` gives the DataFrame."""

    def __init__(self, *, load_args: dict[str, Any] | None = None, save_args: dict[str, Any] | None = None,
                 **kwargs: Any) -> None:
        load_args = dict(load_args or {})
        self._window_rows = int(load_args.pop("window_rows", 1_000_000))
        save_args = {"row_group_size": 100_000, **(save_args or {})}
        super().__init__(load_args=load_args, save_args=save_args, **kwargs)

    def load(self) -> ParquetSamples:  # type: ignore[override]
        path = get_filepath_str(self._get_load_path(), self._protocol)
        return ParquetSamples(path, self._window_rows, self._fs)
