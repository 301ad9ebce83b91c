"""End to end through the real pieces: synthetic BraTS layout → loader → AE → evaluate → store → report,
plus resume after an interrupted run."""

from __future__ import annotations

from pathlib import Path

import pytest

import benchmark.runner as runner
from benchmark.runner import run_experiment
from reports.report import write_report
from tests.tiny_config import compose_tiny


def tiny_config(tmp_path: Path, data_dir: Path, *extra: str):
    """The default experiment shrunk to seconds: 6 synthetic subjects at 32 px, 40 AE steps.

    Data and slice cache live in the session-wide ``data_dir`` (generated once); outputs in ``tmp_path``.
    """
    overrides = [
        "experiment.only_methods=[ae]",
        "methods.ae.train.steps=40",
        "methods.ae.train.batch_size=16",
        "methods.ae.train.val_every=20",
        "methods.ae.params.erosion=1",
        "methods.ae.params.median=3",
        *extra,
    ]
    return compose_tiny(tmp_path / "out", data_dir, *overrides)


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory, shared_data_dir):
    tmp_path = tmp_path_factory.mktemp("run")
    cfg = tiny_config(tmp_path, shared_data_dir)
    store = run_experiment(cfg)
    return tmp_path, cfg, store


def test_run_writes_one_row_per_cell_and_protocol(finished_run) -> None:
    _, cfg, store = finished_run
    rows = store.rows()
    assert len(store.cells()) == 2  # flair and t1, one method, one seed
    assert set(rows["protocol"]) == {"oracle_global", "val_fpr", "val_labelled", "oracle_per_image"}
    assert set(rows["modality"]) == {"flair", "t1"}
    for column in ("commit", "config_hash", "preprocess_hash", "seed", "started", "finished", "config"):
        assert rows[column].notna().all(), column
    assert (rows["nfe_per_slice"] == 1).all()
    assert rows["dice"].between(0, 1).all() and rows["auroc"].between(0, 1).all()


def test_report_has_paper_layout_tables(finished_run) -> None:
    tmp_path, cfg, store = finished_run
    report = write_report(store, tmp_path / "report", cfg)
    text = report.read_text()
    assert "| Method | flair DSC | flair Sens. | flair Prec. | flair SSIM | flair NFE | flair ms/slice | t1 DSC" in text
    assert "\n| AE | " in text
    for suffix in ("md", "tex", "csv"):
        for protocol in ("oracle_global", "val_fpr", "val_labelled"):  # one table per protocol
            assert (tmp_path / "report" / f"table__synthetic-brats__{protocol}.{suffix}").exists()


def test_interrupted_run_resumes_without_redoing_finished_cells(tmp_path, shared_data_dir, monkeypatch) -> None:
    cfg = tiny_config(tmp_path, shared_data_dir, "methods.ae.train.steps=4")
    real_run_cell = runner.run_cell
    calls: list[str] = []

    def interrupt_on_second_cell(cell, *args, **kwargs):
        calls.append(cell.key)
        if len(calls) == 2:
            raise KeyboardInterrupt  # what Ctrl-C raises mid-run
        return real_run_cell(cell, *args, **kwargs)

    monkeypatch.setattr(runner, "run_cell", interrupt_on_second_cell)
    with pytest.raises(KeyboardInterrupt):
        run_experiment(cfg)
    store = runner.ResultsStore(cfg.paths.results)
    assert store.cells() == [calls[0]]  # the first cell survived, nothing half-written
    finished_first = calls[0]

    calls.clear()
    monkeypatch.setattr(
        runner, "run_cell", lambda cell, *a, **k: (calls.append(cell.key), real_run_cell(cell, *a, **k))
    )
    run_experiment(cfg)
    assert len(calls) == 1 and calls[0] != finished_first  # only the unfinished cell ran
    assert len(store.cells()) == 2


def test_a_new_method_added_by_module_and_config_appears_in_the_table(tmp_path, shared_data_dir, monkeypatch) -> None:
    """The README's recipe: one class with @register plus a config entry; nothing else changes."""
    import torch

    import methods.base as base
    from methods.base import AnomalyMethod, MethodOutput

    monkeypatch.setattr(base, "_REGISTRY", dict(base._REGISTRY))

    @base.register("brightness")
    class Brightness(AnomalyMethod):
        """Toy method: the anomaly score is the intensity itself (finds bright lesions on FLAIR)."""

        label = "Bright"
        trains = False

        def fit(self, train, val, budget):
            return base.TrainLog(steps=0)

        def predict(self, batch):
            x = batch.channel(self.context.modality)
            return MethodOutput(
                anomaly_map=x * (batch.brain > 0), reconstruction=None, nfe=torch.zeros(len(batch), dtype=torch.long)
            )

        def state_dict(self):
            return {}

        def load_state_dict(self, state):
            pass

    cfg = tiny_config(
        tmp_path,
        shared_data_dir,
        "methods.ae.train.steps=4",
        "+methods.bright={name: brightness, params: {}}",
        "experiment.modalities=[flair]",
        "experiment.only_methods=[ae,bright]",
    )
    store = run_experiment(cfg)
    text = write_report(store, tmp_path / "report", cfg).read_text()
    bright = next(line for line in text.splitlines() if line.startswith("| Bright |"))
    rows = store.rows()
    flair = rows[(rows["method"] == "brightness") & (rows["protocol"] == "oracle_global")].iloc[0]
    assert f"{flair['dice']:.3f}" in bright
    assert flair["auroc"] > 0.8  # synthetic FLAIR lesions are hyperintense: raw intensity finds them
