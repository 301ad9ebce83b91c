"""Same seed, same table: a tiny run of two methods, twice, in separate output folders, stores bit-identical maps
and segmentations and identical metric rows on the CPU (only clocks differ). Also the live training curves and
the report's loss-curve figure of such a run."""

from __future__ import annotations

import csv
import math

import pandas as pd

from benchmark.runner import run_experiment_cells
from benchmark.stage_times import PREFIX, SUFFIX
from benchmark.train_logger import CSV_NAME
from reports.report import write_report
from tests.tiny_config import TINY_METHODS, compose_tiny

METHODS = ("ae", "dae_pos")
#: Row fields that are clocks, not results.
CLOCK_FIELDS = ("started", "finished", "train_seconds", "ms_per_slice", "slab_extra_seconds")


def _run(out, data_dir, *extra):
    cfg = compose_tiny(
        out, data_dir,
        f"experiment.only_methods=[{','.join(METHODS)}]", "experiment.modalities=[flair]",
        "experiment.protocols=[oracle_global,val_fpr]",
        *(f"methods.{m}.train.{key}" for m in METHODS for key in ("steps=3", "val_every=2")),
        *(f"methods.{m}.{o}" for m in METHODS for o in TINY_METHODS[m]),
        *extra,
    )  # fmt: skip
    return cfg, *run_experiment_cells(cfg)


def _without_clocks(rows: pd.DataFrame) -> pd.DataFrame:
    """The rows without clock fields (:data:`CLOCK_FIELDS` and the stage times ``time_<stage>_s``)."""
    stage_times = [c for c in rows.columns if c.startswith(PREFIX) and c.endswith(SUFFIX)]
    return rows.drop(columns=[*CLOCK_FIELDS, *stage_times])


def test_one_seed_twice_gives_identical_maps_and_rows(tmp_path, shared_data_dir) -> None:
    _, first, cells = _run(tmp_path / "first", shared_data_dir)
    _, second, cells_again = _run(tmp_path / "second", shared_data_dir)
    assert cells == cells_again and len(cells) == len(METHODS)
    for cell in cells:
        a, b = first.arrays(cell), second.arrays(cell)
        assert sorted(a) == sorted(b) and "anomaly_maps" in a and "segmentation__val_fpr" in a
        for name in a:
            assert a[name].dtype == b[name].dtype and a[name].shape == b[name].shape
            assert a[name].tobytes() == b[name].tobytes(), f"{cell}/{name} differs between two runs of one seed"
    rows_a, rows_b = (_without_clocks(store.rows(cells)) for store in (first, second))
    assert rows_a.columns.tolist() == rows_b.columns.tolist()
    assert rows_a.astype(str).values.tolist() == rows_b.astype(str).values.tolist()  # exact (NaN == NaN as text)
    assert rows_a["deterministic"].tolist() == [True] * len(rows_a)


def test_training_curves_are_logged_per_cell_and_drawn_in_the_report(tmp_path, shared_data_dir) -> None:
    cfg, store, cells = _run(tmp_path, shared_data_dir, "report=false")
    rows = store.rows(cells).drop_duplicates("cell").set_index("cell")
    for cell in cells:
        with open(tmp_path / "default" / "logs" / cell / CSV_NAME, newline="") as f:
            logged = list(csv.DictReader(f))
        history = rows.loc[cell, "train_history"]
        assert [int(r["step"]) for r in logged] == [h["step"] for h in history] == [2, 3]
        assert [float(r["train_loss"]) for r in logged] == [h["train_loss"] for h in history]
        assert all(math.isfinite(h["val_loss"]) for h in history)
    report = write_report(store, tmp_path / "report", cfg, cells=cells)
    text = report.read_text()
    assert "## Training curves" in text and "figures/loss_curves__synthetic-brats.png" in text
    points = pd.read_csv(tmp_path / "report" / "figures" / "loss_curves__synthetic-brats.csv")
    assert sorted(points["step"]) == [2, 2, 3, 3] and set(points["cell"]) == set(cells)
