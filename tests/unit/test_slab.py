"""The whole-slab test set: slab slice selection, healthy test subjects, the paper view as a subset of the slab,
its bad-input errors, and assembling one set's predictions from disjoint parts."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from benchmark.predict import Predictions, assemble_predictions
from datasets.errors import DatasetError
from datasets.loader import load_splits
from datasets.preprocess import slab_slices
from datasets.splits import assign_subjects
from tests.nifti_fixtures import SHAPE, SLICE_RANGE, brats_file, disk_brain, lesion_slices, write_brats, write_nifti
from tests.unit.test_loaders import make_config


def test_slab_slices_known_answers() -> None:
    brain = np.zeros((4, 4, 12), dtype=bool)
    brain[:, :, 2:10] = True  # brain on z 2..9
    assert slab_slices(brain, (0, 12)) == list(range(2, 10))
    assert slab_slices(brain, (0, 12), step=3) == [3, 6, 9]  # anchored on the range start (0): multiples of 3
    assert slab_slices(brain, (0, 12), step=3, include=[4]) == [4, 7]  # anchored on the view's first slice
    assert slab_slices(brain, (0, 12), step=3, include=[4, 8]) == [4, 7, 8]  # an off-grid view slice is added
    assert slab_slices(brain, (3, 6), step=2) == [3, 5]
    assert slab_slices(np.zeros((2, 2, 5), dtype=bool), (0, 5)) == []


def _healthy_copy(root: Path, source: str, target: str) -> None:
    """A lesion-free copy of subject ``source`` as ``target`` (same images, empty seg)."""
    shutil.copytree(root / source, root / target)
    for path in (root / target).iterdir():
        path.rename(path.with_name(path.name.replace(source, target)))
    seg = root / target / f"{target}_seg.nii.gz"
    write_nifti(seg, np.zeros(SHAPE, dtype=np.uint8))


@pytest.fixture(scope="module")
def brats_with_healthy(tmp_path_factory) -> tuple[Path, list[str]]:
    root = tmp_path_factory.mktemp("brats_h") / "data"
    ids = write_brats(root)
    _healthy_copy(root, ids[0], "BraTS2021_00090")
    return root, ids


@pytest.mark.parametrize("test_slices,step", [("all", 1), ("all", 2), ("largest", 2)])
def test_slab_holds_every_brain_slice_and_the_paper_view_is_a_subset(
    brats_with_healthy, tmp_path, test_slices, step
) -> None:
    root, _ = brats_with_healthy
    config = make_config(
        "brats", root, tmp_path, test_slices=test_slices, eval_slice_step=step, test_only_subjects=("BraTS2021_00090",)
    )
    splits = load_splits(config, progress=False)
    slab, view = splits.test_slab, splits.test_view
    assert slab is not None and view is not None
    assert "BraTS2021_00090" in slab.subjects and "BraTS2021_00090" not in splits.test.subjects
    assert torch.equal(splits.test.images, slab.images[list(view)])
    assert [(slab.subjects[k], slab.slice_index[k]) for k in view] == list(
        zip(splits.test.subjects, splits.test.slice_index)
    )
    start, stop = SLICE_RANGE
    for subject in dict.fromkeys(slab.subjects):
        z = [z for s, z in zip(slab.subjects, slab.slice_index) if s == subject]
        view_z = [z for s, z in zip(splits.test.subjects, splits.test.slice_index) if s == subject]
        anchor = view_z[0] if view_z else start
        # the disk brain is on every slice: the slab is the whole range on the view's step grid
        assert z == [k for k in range(start, stop) if (k - anchor) % step == 0]
        assert set(view_z) <= set(z)
        lesion = (
            {k for k in lesion_slices(int(subject[-5:])) if start <= k < stop}
            if subject != "BraTS2021_00090"
            else set()
        )
        assert {k for k, has in zip(z, _has_lesion(slab, subject)) if has} == lesion & set(z)
    # the healthy subject's slices are the original's images with empty labels
    healthy = [k for k, s in enumerate(slab.subjects) if s == "BraTS2021_00090"]
    assert not slab.labels[healthy].any()


def _has_lesion(slab, subject: str) -> list[bool]:
    return [bool(slab.labels[k].any()) for k, s in enumerate(slab.subjects) if s == subject]


def test_test_only_subjects_go_to_test_and_leave_the_seeded_split_unchanged(brats_with_healthy, tmp_path) -> None:
    root, ids = brats_with_healthy
    plain = assign_subjects(ids, make_config("brats", root, tmp_path))
    extra = assign_subjects(
        [*ids, "BraTS2021_00090"], make_config("brats", root, tmp_path, test_only_subjects=("BraTS2021_00090",))
    )
    assert extra["train"] == plain["train"] and extra["val"] == plain["val"]
    assert extra["test"] == [*plain["test"], "BraTS2021_00090"]
    with pytest.raises(DatasetError, match=r"test_only_subjects: 1 id\(s\) not found.*'nope'"):
        assign_subjects(ids, make_config("brats", root, tmp_path, test_only_subjects=("nope",)))


def test_a_lesion_on_a_slice_without_brain_is_refused_naming_the_subject(tmp_path) -> None:
    root = tmp_path / "data"
    ids = write_brats(root)
    config = make_config("brats", root, tmp_path, test_slices="all")
    test_subject = load_splits(config, progress=False).test.subjects[0]
    i = ids.index(test_subject)
    brain = disk_brain()
    brain[:, :, SLICE_RANGE[0]] = False  # no brain on the first slice of the range...
    for modality in ("flair", "t1", "t1ce", "t2"):
        image = np.where(brain, 120.0, 0.0).astype(np.float32)
        write_nifti(brats_file(root, i, modality), image)
    seg = np.zeros(SHAPE, dtype=np.uint8)
    seg[20:23, 26:29, SLICE_RANGE[0]] = 2  # ... but a lesion there
    write_nifti(brats_file(root, i, "seg"), seg)
    with pytest.raises(DatasetError, match=rf"{test_subject} has lesion voxels on slice\(s\) \[{SLICE_RANGE[0]}\]"):
        load_splits(make_config("brats", root, tmp_path / "b", test_slices="all"), progress=False)


def _predictions(values: list[float], seconds: float, with_recon: bool) -> Predictions:
    maps = torch.tensor(values).reshape(-1, 1, 1).expand(-1, 2, 2).contiguous()
    return Predictions(maps, maps + 1 if with_recon else None, None, torch.arange(len(values)), seconds)


def test_assemble_predictions_puts_every_part_at_its_positions() -> None:
    view = _predictions([10.0, 30.0], 1.0, True)
    rest = _predictions([0.0, 20.0, 40.0], 2.5, True)
    whole = assemble_predictions([((1, 3), view), ((0, 2, 4), rest)], 5)
    assert whole.anomaly_maps[:, 0, 0].tolist() == [0.0, 10.0, 20.0, 30.0, 40.0]
    assert whole.reconstructions is not None and whole.reconstructions[:, 0, 0].tolist() == [1, 11, 21, 31, 41]
    assert whole.nfe.tolist() == [0, 0, 1, 1, 2] and whole.seconds == 3.5
    with pytest.raises(ValueError, match="exactly once"):
        assemble_predictions([((0, 1), view), ((1, 2, 3), rest)], 4)
    with pytest.raises(ValueError, match="some parts only"):
        assemble_predictions([((1, 3), view), ((0, 2, 4), _predictions([0.0, 2.0, 4.0], 0.0, False))], 5)
