"""Cells side by side in worker processes (``workers=2``) give the serial run's results: the same cells, each
once, the network that DDPM and AutoDDPM share trained once, bit-identical maps at the same torch thread count,
and a report that shows every row."""

from __future__ import annotations

import torch

from benchmark.runner import run_experiment_cells
from reports.report import write_report
from tests.tiny_config import TINY_METHODS, compose_tiny, with_smoke_params

METHODS = ("ae", "ddpm", "autoddpm")  # AutoDDPM reuses DDPM's checkpoint
PROTOCOLS = ("oracle_global", "val_fpr")


def _run(out, data_dir, workers: int):
    cfg = compose_tiny(
        out, data_dir,
        f"experiment.only_methods=[{','.join(METHODS)}]", "experiment.modalities=[flair]",
        f"experiment.protocols=[{','.join(PROTOCOLS)}]", "diagnostic_slices=0", f"workers={workers}",
        *(f"methods.{m}.train.{key}" for m in METHODS for key in ("steps=2", "val_every=2")),
        *(f"methods.ae.{o}" for o in TINY_METHODS["ae"]),
    )  # fmt: skip
    cfg = with_smoke_params(cfg, batch_size=4)
    return cfg, *run_experiment_cells(cfg)


def test_two_workers_match_the_serial_run_and_train_a_shared_network_once(tmp_path, shared_data_dir) -> None:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the workers' count (2 workers on 2 cores, or 2 of more): same float rounding
    try:
        _, serial, cells = _run(tmp_path / "serial", shared_data_dir, workers=1)
    finally:
        torch.set_num_threads(threads)
    cfg, parallel, parallel_cells = _run(tmp_path / "parallel", shared_data_dir, workers=2)

    assert parallel_cells == cells and len(cells) == len(METHODS)
    rows = parallel.rows(cells)
    assert sorted(rows.groupby("cell").size().tolist()) == [len(PROTOCOLS)] * len(METHODS)  # each cell once
    reused = rows.drop_duplicates("cell").set_index("method")["checkpoint_reused"]
    assert reused.to_dict() == {"ae": False, "ddpm": False, "autoddpm": True}
    assert len(list((tmp_path / "parallel" / "checkpoints").rglob("*.pt"))) == 2  # AE + the shared ε-model
    for cell in cells:
        a, b = serial.arrays(cell), parallel.arrays(cell)
        assert sorted(a) == sorted(b)
        for name in a:
            assert a[name].tobytes() == b[name].tobytes(), f"{cell}/{name}: workers=2 differs from workers=1"
    metrics = ["cell", "protocol", "dice", "auroc", "auprc"]
    assert serial.rows(cells)[metrics].astype(str).values.tolist() == rows[metrics].astype(str).values.tolist()

    report = write_report(parallel, tmp_path / "report", cfg, cells=cells).read_text()
    for label in ("AE", "DDPM", "AutoDDPM"):
        assert f"| {label}" in report
