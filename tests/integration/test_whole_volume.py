"""The whole-volume evaluation end to end: one set of predictions scored on the paper's slice view and on the
test slab, on the NIfTI fixtures of BraTS 2021, ATLAS v2.0 and ISLES 2015 and on the built-in synthetic data."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hydra import compose, initialize_config_dir

from benchmark.runner import run_experiment_cells
from benchmark.schema import stored_test_slab_of, stored_test_split_of
from reports.report import write_report
from tests.nifti_fixtures import SHAPE, SLICE_RANGE, write_atlas, write_brats, write_isles, write_nifti
from tests.tiny_config import CONFIG_DIR, TINY_METHODS, compose_tiny

HEALTHY = "BraTS2021_00090"
TINY_AE = (
    "experiment.only_methods=[ae]",
    "experiment.protocols=[oracle_global,val_fpr,oracle_per_image]",
    "methods.ae.train.steps=2",
    *(f"methods.ae.{o}" for o in TINY_METHODS["ae"]),
)


def _brats_with_healthy(root: Path) -> None:
    """The BraTS fixture plus a lesion-free copy of its first subject (a healthy test subject)."""
    ids = write_brats(root)
    shutil.copytree(root / ids[0], root / HEALTHY)
    for path in (root / HEALTHY).iterdir():
        path.rename(path.with_name(path.name.replace(ids[0], HEALTHY)))
    write_nifti(root / HEALTHY / f"{HEALTHY}_seg.nii.gz", np.zeros(SHAPE, dtype=np.uint8))


FIXTURES = {
    "brats": (_brats_with_healthy, "flair", [f"dataset.test_only_subjects=[{HEALTHY}]"]),
    "atlas": (write_atlas, "t1", []),
    "isles": (write_isles, "flair", []),
}


@pytest.mark.parametrize("layout", sorted(FIXTURES))
def test_fixture_releases_get_the_whole_volume_table(layout, tmp_path) -> None:
    writer, modality, extra = FIXTURES[layout]
    root = tmp_path / "data"
    writer(root)
    overrides = [
        f"dataset={layout}", f"dataset.root={root}", "dataset.image_size=16",
        f"dataset.slice_range=[{SLICE_RANGE[0]},{SLICE_RANGE[1]}]", "dataset.test_slices=all",
        "dataset.split_fractions=[0.5,0.25,0.25]", f"experiment.modalities=[{modality}]",
        f"paths.output={tmp_path / 'out'}", "progress=false", "bootstrap_samples=20", *TINY_AE, *extra,
    ]  # fmt: skip
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        cfg = compose(config_name="config", overrides=overrides)
    store, cells = run_experiment_cells(cfg)
    report = write_report(store, Path(cfg.paths.report), cfg, cells).read_text()
    rows = store.rows(cells)
    per_subject = store.per_subject(cells)

    slab_rows = rows[rows["vol_view"].notna()]
    assert set(slab_rows["protocol"]) == {"oracle_global", "val_fpr"}  # the per-image oracle has no slab view
    assert rows[rows["protocol"] == "oracle_per_image"]["vol_view"].isna().all()
    assert f"### {cfg.dataset.name} — whole volume — oracle_global" in report
    assert (Path(cfg.paths.report) / "per_subject.parquet").is_file()
    for _, row in slab_rows.iterrows():
        subjects = per_subject[per_subject["protocol"] == row["protocol"]]
        lesion = subjects[~subjects["healthy"]]
        assert row["vol_dice"] == pytest.approx(lesion["dice"].mean())  # the row is the mean of its subjects
        assert int(row["vol_n_subjects"]) == len(subjects) == row["n_test_subjects"] + (layout == "brats")
    if layout == "brats":
        assert per_subject.set_index("subject").loc[HEALTHY, "healthy"].all()
        assert np.isfinite(slab_rows["vol_healthy_subject_fp"]).all()
    else:  # no healthy test subject: NaN with its reason, and a footnote in the table
        assert slab_rows["vol_healthy_subject_fp"].isna().all()
        assert slab_rows["vol_healthy_subject_fp_nan_reason"].str.contains("no healthy test subject").all()
        assert "no healthy test subject" in report


def test_synthetic_run_scores_slices_and_slab_from_one_prediction(tmp_path, shared_data_dir) -> None:
    cfg = compose_tiny(
        tmp_path, shared_data_dir, *TINY_AE, "methods.ae.train.steps=40", "methods.ae.train.batch_size=8",
        "experiment.modalities=[flair]",
    )  # fmt: skip
    store, cells = run_experiment_cells(cfg)
    (row,) = store.rows(cells).query("protocol == 'oracle_global'").to_dict("records")
    arrays = store.arrays(row["cell"])
    slab, test = store.arrays(stored_test_slab_of(row)), store.arrays(stored_test_split_of(row))
    # the test slices' maps are the slab's maps at the test slices' positions: predicted once
    key = pd.MultiIndex.from_arrays([slab["subjects"], slab["slice_index"]])
    positions = key.get_indexer(pd.MultiIndex.from_arrays([test["subjects"], test["slice_index"]]))
    assert (positions >= 0).all()
    np.testing.assert_array_equal(arrays["slab_anomaly_maps"][positions], arrays["anomaly_maps"])
    assert row["slab_extra_slices"] == len(slab["subjects"]) - len(test["subjects"]) > 0
    # a trained AE sees the bright synthetic FLAIR lesions: better than chance on the slab
    assert row["vol_slice_auroc"] > 0.6 and row["vol_lesion_sens"] > 0.5
    assert row["vol_n_healthy_subjects"] == 1
