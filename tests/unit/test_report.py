"""report.md from a hand-made results store (no training): every written table and figure is linked,
the oracle block, sweeps and timing rows go through reports/sensitivity.py and reports/cost.py when
those modules exist and give a clear note when they do not, diagnostic figures are linked."""

from __future__ import annotations

import importlib.machinery
import sys
import types
from pathlib import Path

import numpy as np
import pandas as pd
from omegaconf import OmegaConf

import reports.report as report_module
from benchmark.schema import per_image_records, stored_test_split
from benchmark.store import ResultsStore
from reports.report import write_report
from reports.tables import Table

N, SIZE = 6, 16
SWEPT = "itermask2[params.tau_percentile=80]"  # the key a one-value sweep over IterMask²'s τ generates


def _store(root: Path, timing: bool = True) -> ResultsStore:
    store = ResultsStore(root)
    rng = np.random.default_rng(0)
    labels = np.zeros((N, SIZE, SIZE), dtype=bool)
    labels[:, 4:8, 4:8] = True
    subjects = np.array(["s1", "s1", "s2", "s3", "s4", "s5"])
    store.write_arrays(stored_test_split("toy", "flair", "h", "d"), {
        "images": rng.normal(size=(N, SIZE, SIZE)).astype(np.float16), "labels": labels,
        "brain": np.ones((N, SIZE, SIZE), dtype=np.float16), "subjects": subjects, "slice_index": np.arange(N),
    })  # fmt: skip
    for key, label, dice in (("ae", "AE", 0.4), (SWEPT, "IterMask²", 0.7)):
        cell = key.partition("[")[0]
        base = {
            "experiment": "toy", "dataset": "toy", "modality": "flair", "method": cell, "method_key": key,
            "method_label": label, "seed": 0, "cell": cell, "status": "ok", "config_hash": cell,
            "preprocess_hash": "h", "data_hash": "d", "config": f"name: {cell}\nparams:\n  tau_percentile: 80\n",
            "param.tau_percentile": 80, "commit": "abc",
            "device": "cpu", "deviations": [f"{label} deviation"], "train_steps": 5, "train_seconds": 1.0,
            "image_size": SIZE, "n_test_slices": N, "n_test_subjects": 5, "nfe_per_slice": 1.0, "ms_per_slice": 2.0,
            "auroc": 0.8, "auprc": 0.5, "norm_min": 0.0, "norm_max": 1.0, "sens": 0.5, "prec": 0.5, "ssim_paper": 0.9,
            "dice_small": dice, "dice_medium": np.nan, "dice_large": np.nan,
        }  # fmt: skip
        rows = [
            base | {"protocol": "oracle_global", "is_oracle": True, "dice": dice},
            base | {"protocol": "oracle_per_image", "is_oracle": True, "dice": dice + 0.1},
        ]
        if key == SWEPT:
            rows[0]["figures"] = ["figures/itermask2/shrinking.png"]
            (root / "figures" / "itermask2").mkdir(parents=True)
            (root / "figures" / "itermask2" / "shrinking.png").write_bytes(b"png")
        per_image = dice + rng.normal(scale=0.05, size=N)
        arrays = {
            "anomaly_maps": rng.random((N, SIZE, SIZE)).astype(np.float16),
            "reconstructions": rng.normal(size=(N, SIZE, SIZE)).astype(np.float16),
            "segmentation__oracle_global": labels, "segmentation__oracle_per_image": labels,
        }  # fmt: skip
        records = pd.concat(
            per_image_records(rows[0] | {"method_label": label}, protocol, {
                "dice": per_image, "lesion_px": labels.reshape(N, -1).sum(1), "size_bin": np.zeros(N, dtype=int),
            }, tuple(subjects), tuple(range(N)))
            for protocol in ("oracle_global", "oracle_per_image")
        )  # fmt: skip
        store.write(cell, rows, arrays, records)
    if timing:
        store.write("timing", [{"experiment": "timing", "method_label": "AE", "record": "method_cost", "seed": 0}])
    return store


def _config(sweep: bool):
    return OmegaConf.create({
        "methods": {"ae": {}, "itermask2": {}},
        "experiment": {
            "name": "toy", "title": "Toy report", "modalities": ["flair"], "table_protocol": "oracle_global",
            "oracle_protocols": ["oracle_per_image"], "oracle_methods": [SWEPT], "figure_examples": 2,
            "reference_method": SWEPT,
            "sweep": {"method": "itermask2", "parameter": "params.tau_percentile", "values": [80], "label": "τ"}
            if sweep else None,
        },
    })  # fmt: skip


def _fake_module(monkeypatch, name: str, **functions) -> None:
    module = types.ModuleType(name)
    module.__spec__ = importlib.machinery.ModuleSpec(name, loader=None)
    for key, function in functions.items():
        setattr(module, key, function)
    monkeypatch.setitem(sys.modules, name, module)


def test_report_links_every_table_and_figure_and_calls_sweep_and_cost(tmp_path, monkeypatch) -> None:
    calls = []
    figure = tmp_path / "report" / "figures" / "sweep.png"

    def sensitivity_figure(rows, parameter, label, out_dir, protocol):
        calls.append(("figure", parameter, label, protocol))
        figure.parent.mkdir(parents=True, exist_ok=True)
        figure.write_bytes(b"png")
        return [figure]

    _fake_module(
        monkeypatch,
        "reports.sensitivity",
        sensitivity_figure=sensitivity_figure,
        sensitivity_table=lambda rows, parameter, protocol: pd.DataFrame({parameter: [80.0], "dice": [0.5]}),
    )
    _fake_module(monkeypatch, "reports.cost", cost_table=lambda rows: Table(
        pd.DataFrame({("", "ms"): [1.0]}, index=list(rows["method_label"])), "cost caption", ()))  # fmt: skip
    store = _store(tmp_path / "results")
    text = write_report(store, tmp_path / "report", _config(sweep=True)).read_text()

    written = [p.relative_to(tmp_path / "report").as_posix() for p in (tmp_path / "report").rglob("*") if p.is_file()]
    for path in written:
        if path not in ("report.md", "all_rows.csv"):
            assert f"]({path})" in text, path
    for stem in (
        "table__toy__oracle_global",
        "wilcoxon__oracle_global",
        "sensitivity__param.tau_percentile",
        "cost",
        "per_image",
    ):
        assert any(p.startswith(stem) for p in written), stem
    assert "figures/qualitative__toy__flair.png" in written and "figures/reconstructions__toy__flair.pdf" in written
    assert calls == [("figure", "param.tau_percentile", "τ", "oracle_global")]
    assert "## Sensitivity to τ" in text and "cost caption" in text and "| AE | 1.000 |" in text
    assert "[figures/itermask2/shrinking.png](figures/itermask2/shrinking.png)" in text
    assert "| † IterMask² (per-image oracle) |" in text and "| † AE (per-image oracle)" not in text
    assert "- IterMask² deviation" in text and "- Commit(s): abc" in text
    # the timing row stays out of the comparison tables
    assert "timing" not in pd.read_csv(tmp_path / "report" / "table__toy__oracle_global.csv")["method"].tolist()


def test_missing_sensitivity_and_cost_modules_give_a_clear_note(tmp_path, monkeypatch) -> None:
    real_find_spec = report_module.importlib.util.find_spec
    missing = {"reports.sensitivity", "reports.cost"}
    monkeypatch.setattr(
        report_module.importlib.util, "find_spec", lambda n: None if n in missing else real_find_spec(n)
    )
    text = write_report(_store(tmp_path / "results"), tmp_path / "report", _config(sweep=True)).read_text()
    assert "reports/sensitivity.py is not available in this checkout" in text
    assert "reports/cost.py is not available in this checkout" in text


def test_empty_store_gives_a_short_report(tmp_path) -> None:
    text = write_report(ResultsStore(tmp_path / "results"), tmp_path / "report", _config(sweep=False)).read_text()
    assert text == "# Toy report\n\nNo finished cells in the results store yet.\n"


def test_no_sweep_or_cost_section_without_sweep_or_timing_rows(tmp_path) -> None:
    text = write_report(_store(tmp_path / "results", timing=False), tmp_path / "report", _config(False)).read_text()
    assert "## Sensitivity" not in text and "## Cost" not in text and "## Tables" in text
