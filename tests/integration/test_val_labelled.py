"""The labelled validation set (protocol.md §7): the validation subjects' lesion slices as ``val_labelled``,
the data hash of the pre-processed content, and the ``val_labelled`` threshold protocol end to end."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch

import datasets.loader
from benchmark.evaluate import evaluate, needs_labelled_validation, needs_validation_maps
from benchmark.predict import Predictions
from benchmark.runner import prepare_data, run_experiment
from benchmark.thresholds import val_labelled
from datasets.config import DatasetConfig
from datasets.layouts import get_layout
from datasets.loader import load_splits, read_subject
from datasets.preprocess import select_slices, slices_to_tensors
from datasets.slices import SliceSet
from tests.nifti_fixtures import BRATS_MODALITIES, SLICE_RANGE, brats_file, lesion_slices, write_brats
from tests.tiny_config import compose_tiny
from tests.toy_data import toy_slices


def brats_config(root: Path, cache: Path, **overrides) -> DatasetConfig:
    fields = dict(layout="brats", root=root, modalities=BRATS_MODALITIES, image_size=16, slice_range=SLICE_RANGE,
                  split_fractions=(0.34, 0.33, 0.33), cache_dir=cache)  # fmt: skip
    return DatasetConfig(**(fields | overrides))


def split_file(path: Path, ids: list[str], train: list[int], val: list[int], test: list[int]) -> Path:
    path.write_text(
        json.dumps({name: [ids[i] for i in part] for name, part in zip(("train", "val", "test"), (train, val, test))})
    )
    return path


@pytest.fixture(scope="module")
def brats(tmp_path_factory) -> tuple[Path, list[str]]:
    root = tmp_path_factory.mktemp("brats") / "BraTS2021_Training_Data"
    return root, write_brats(root, n=5)


# ---------------------------------------------------------------- the fourth slice set


def test_val_labelled_is_the_val_subjects_lesion_slices_selected_and_preprocessed_like_test(brats, tmp_path) -> None:
    root, ids = brats
    options = dict(test_slices="all", eval_slice_step=2)
    a = load_splits(
        brats_config(
            root, tmp_path / "a", split_file=split_file(tmp_path / "a.json", ids, [0, 1], [2, 3], [4]), **options
        ),
        progress=False,
    )
    b = load_splits(
        brats_config(
            root, tmp_path / "b", split_file=split_file(tmp_path / "b.json", ids, [0, 1], [4], [2, 3]), **options
        ),
        progress=False,
    )
    labelled = a.val_labelled
    assert labelled is not None
    assert set(labelled.subjects) == {ids[2], ids[3]} and not set(labelled.subjects) & set(a.test.subjects)
    assert labelled.labels.flatten(1).any(1).all()  # every slice has a lesion pixel
    for i in (2, 3):  # every lesion slice in range ('all'), then every 2nd (eval_slice_step)
        z = [z for s, z in zip(labelled.subjects, labelled.slice_index) if s == ids[i]]
        assert z == sorted(lesion_slices(i))[::2] == [6 + i, 12 + i]
    # the same subjects as test subjects (split file b) give exactly the same slices and tensors
    assert (labelled.subjects, labelled.slice_index) == (b.test.subjects, b.test.slice_index)
    for field in ("images", "brain", "labels"):
        assert torch.equal(getattr(labelled, field), getattr(b.test, field)), field


def test_val_labelled_follows_the_largest_rule(brats, tmp_path) -> None:
    root, ids = brats
    splits = load_splits(
        brats_config(root, tmp_path, split_file=split_file(tmp_path / "s.json", ids, [0, 1], [2, 3], [4])),
        progress=False,
    )
    assert splits.val_labelled is not None
    assert list(zip(splits.val_labelled.subjects, splits.val_labelled.slice_index)) == [(ids[2], 11), (ids[3], 12)]


def test_healthy_val_is_unchanged_by_the_labelled_set(brats, tmp_path) -> None:
    """The healthy val split equals the pre-existing pipeline run by hand: select_slices('healthy') then resizing."""
    root, ids = brats
    config = brats_config(
        root, tmp_path, split_file=split_file(tmp_path / "s.json", ids, [0, 1], [2, 3], [4]), eval_slice_step=2
    )
    val = load_splits(config, progress=False).val
    layout = get_layout("brats")
    parts, expected_z = [], []
    for subject in (ids[2], ids[3]):
        volumes = read_subject(layout, layout.subject_files(subject, root / subject, config.modalities), config)
        z = select_slices(volumes.lesion, volumes.brain, config.slice_range, "healthy", config.test_slices, 2)
        parts.append(slices_to_tensors(volumes.images, volumes.brain, volumes.lesion, z, config.image_size, False))
        expected_z += z
    assert val.slice_index == tuple(expected_z)
    for k, field in enumerate(("images", "brain", "labels")):
        assert torch.equal(getattr(val, field), torch.cat([p[k] for p in parts])), field


def test_no_lesion_among_val_subjects_gives_none_also_from_the_cache(brats, tmp_path, monkeypatch, caplog) -> None:
    root, ids = brats
    # slice_range (4, 7): only subject 0 has a lesion slice (z = 6); it is the test subject
    config = brats_config(
        root, tmp_path, slice_range=(4, 7), split_file=split_file(tmp_path / "s.json", ids, [1, 2], [3], [0])
    )
    with caplog.at_level(logging.INFO, logger="datasets.loader"):
        first = load_splits(config, progress=False)
    assert first.val_labelled is None and first.test.subjects == (ids[0],)
    assert "no val_labelled set" in caplog.text
    reads: list[Path] = []
    monkeypatch.setattr(datasets.loader, "read_volume", lambda path: reads.append(path))
    second = load_splits(config, progress=False)
    assert reads == [] and second.val_labelled is None and second.data_hash == first.data_hash


# ---------------------------------------------------------------- data hash


def test_data_hash_follows_the_content_not_the_files(tmp_path, monkeypatch) -> None:
    root, cache = tmp_path / "data", tmp_path / "cache"
    write_brats(root, n=3)
    config = brats_config(root, cache)
    first = load_splits(config, progress=False)
    original = first.data_hash
    assert len(original) == 12 and int(original, 16) >= 0

    builds: list[str] = []
    real_hash = datasets.loader.content_hash
    monkeypatch.setattr(datasets.loader, "content_hash", lambda sets: builds.append("x") or real_hash(sets))
    write_brats(root, n=3)  # regenerated in place, identical content: new mtimes, so the cache is rebuilt
    assert load_splits(config, progress=False).data_hash == original and len(builds) == 1
    shutil.rmtree(cache)
    assert load_splits(config, progress=False).data_hash == original and len(builds) == 2

    def no_hashing(sets):
        raise AssertionError("content_hash called on a cache hit")

    monkeypatch.setattr(datasets.loader, "content_hash", no_hashing)
    assert load_splits(config, progress=False).data_hash == original  # read from the cache payload
    monkeypatch.setattr(datasets.loader, "content_hash", real_hash)

    seg = brats_file(root, int(first.train.subjects[0][-5:]), "seg")  # a train subject: all its healthy slices count
    image = nib.load(seg)
    data = np.asanyarray(image.dataobj).copy()
    data[15, 15, 5] = 1  # one lesion voxel inside the brain on a healthy slice: it leaves train
    nib.save(nib.Nifti1Image(data, image.affine), str(seg))
    edited = load_splits(config, progress=False)
    assert 5 not in [z for s, z in zip(edited.train.subjects, edited.train.slice_index) if s == first.train.subjects[0]]
    assert edited.data_hash != original


# ---------------------------------------------------------------- evaluation


def _predictions(slices: SliceSet) -> Predictions:
    """Brightness as anomaly score: finds the toy data's bright FLAIR lesions."""
    maps = slices.channel("flair") * (slices.brain > 0)
    return Predictions(
        anomaly_maps=maps, reconstructions=None, final_masks=None, nfe=torch.zeros(len(slices)), seconds=0.0
    )


def _shuffled_labels(slices: SliceSet) -> SliceSet:
    return SliceSet(
        slices.images,
        slices.brain,
        slices.labels.roll(1, dims=0),
        slices.modalities,
        slices.subjects,
        slices.slice_index,
    )


def test_val_labelled_threshold_never_reads_a_test_label() -> None:
    test, labelled = toy_slices(8, lesions=True, seed=3), toy_slices(6, lesions=True, seed=4)
    shuffled = _shuffled_labels(test)
    assert not torch.equal(shuffled.labels, test.labels)
    protocols = ["oracle_global", "val_labelled"]
    kwargs = dict(labelled_val_pred=_predictions(labelled), labelled_val=labelled, n_boot=10)
    rows = {r.protocol: r.row for r in evaluate(_predictions(test), test, "flair", protocols, **kwargs)}
    other = {r.protocol: r.row for r in evaluate(_predictions(test), shuffled, "flair", protocols, **kwargs)}
    expected = val_labelled(_predictions(labelled).anomaly_maps, labelled.labels, labelled.brain)
    for row in (rows["val_labelled"], other["val_labelled"]):
        assert (row["threshold"], row["threshold_norm"], row["threshold_objective"]) == (
            expected.threshold,
            expected.threshold_norm,
            expected.objective,
        )
        assert row["is_oracle"] is False
    assert other["val_labelled"]["dice"] < rows["val_labelled"]["dice"]  # the metrics did read the shuffled labels


def test_val_labelled_without_a_labelled_set_is_a_clear_error() -> None:
    test = toy_slices(4, lesions=True, seed=3)
    with pytest.raises(
        ValueError,
        match=r"'val_labelled' has no labelled validation set: "
        r"dataset has no lesion slice among its validation subjects",
    ):
        evaluate(_predictions(test), test, "flair", ["oracle_global", "val_labelled"])
    with pytest.raises(ValueError, match=r"'val_labelled' needs labelled_val_pred"):
        evaluate(_predictions(test), test, "flair", ["val_labelled"], labelled_val=test)


def test_which_protocols_need_which_validation_maps() -> None:
    assert needs_labelled_validation(["oracle_global", "val_labelled"]) and not needs_labelled_validation(["val_fpr"])
    assert needs_validation_maps(["val_fpr"]) and not needs_validation_maps(["oracle_global", "val_labelled"])


def test_tiny_run_reports_a_val_labelled_row(tmp_path, shared_data_dir) -> None:
    cfg = compose_tiny(
        tmp_path / "out", shared_data_dir,
        "experiment.only_methods=[ae]",
        "experiment.modalities=[flair]",
        "experiment.protocols=[oracle_global,val_labelled]",
        "methods.ae.train.steps=10", "methods.ae.train.batch_size=16", "methods.ae.train.val_every=5",
        "methods.ae.params.erosion=1", "methods.ae.params.median=3",
    )  # fmt: skip
    splits = prepare_data(cfg)
    assert splits.val_labelled is not None  # the synthetic generator gives every subject lesion slices
    assert set(splits.val_labelled.subjects) <= set(splits.val.subjects)
    rows = run_experiment(cfg).rows()
    row = rows[rows["protocol"] == "val_labelled"]
    assert len(row) == 1 and not row["is_oracle"].iloc[0]
    assert 0.0 <= float(row["dice"].iloc[0]) <= 1.0  # finite (NaN fails both comparisons)
    assert set(rows["protocol"]) == {"oracle_global", "val_labelled"}
