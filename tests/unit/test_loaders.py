"""Dataset loaders on tiny NIfTI fixtures in the real BraTS 2021 / ATLAS v2.0 / ISLES 2015 layouts:
splits, normalisation, slice selection, area resizing, brain masks, cache, and every bad-input error."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch

import datasets.cache
import datasets.loader
from datasets.config import DatasetConfig
from datasets.errors import DatasetError
from datasets.layouts import get_layout
from datasets.loader import load_splits, read_subject
from datasets.preprocess import (
    mni152_brain_mask,
    normalise_p90,
    normalise_zscore,
    resize_area,
    select_slices,
)
from datasets.splits import read_split_file, seeded_split
from tests.nifti_fixtures import (
    ATLAS_AFFINE,
    BRATS_MODALITIES,
    ISLES_TAGS,
    LPS_AFFINE,
    SHAPE,
    SLICE_RANGE,
    atlas_file,
    brats2023_file,
    brats_file,
    isles_file,
    lesion_slices,
    reoriented_copy,
    write_atlas,
    write_brats,
    write_brats2023,
    write_isles,
    write_nifti,
)

MODALITIES = {"brats": BRATS_MODALITIES, "brats2023": BRATS_MODALITIES, "atlas": ("t1",), "isles": tuple(ISLES_TAGS)}
WRITERS = {"brats": write_brats, "atlas": write_atlas, "isles": write_isles}


def make_config(layout: str, root: Path, tmp_path: Path, **overrides) -> DatasetConfig:
    fields = dict(
        layout=layout,
        root=root,
        modalities=MODALITIES[layout],
        image_size=16,  # 48 / 16 = 3: area resizing = 3x3 block means
        slice_range=SLICE_RANGE,
        split_fractions=(0.5, 0.25, 0.25),
        cache_dir=tmp_path / "cache",
    )
    fields.update(overrides)
    return DatasetConfig(**fields)


def block_mean(x: np.ndarray, factor: int = 3) -> np.ndarray:
    h, w = x.shape
    return x.reshape(h // factor, factor, w // factor, factor).mean(axis=(1, 3))


@pytest.fixture(scope="module")
def brats(tmp_path_factory) -> tuple[Path, list[str]]:
    root = tmp_path_factory.mktemp("brats") / "BraTS2021_Training_Data"
    return root, write_brats(root)


@pytest.fixture(scope="module")
def brats_splits(brats, tmp_path_factory):
    root, _ = brats
    return load_splits(make_config("brats", root, tmp_path_factory.mktemp("c")), progress=False)


# ---------------------------------------------------------------- pre-processing functions


def test_normalise_p90_against_hand_computation() -> None:
    volume = np.zeros((4, 4, 4), dtype=np.float32)
    volume.flat[:11] = np.arange(1, 12)  # brain values 1..11: p90 (linear) = sorted[0.9 * 10] = 10
    out = normalise_p90(volume, volume > 0)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, 6 * volume / 10 - 3, atol=1e-6)
    assert np.all(out[volume == 0] == -3.0)
    assert out.flat[9] == pytest.approx(3.0) and out.flat[10] == pytest.approx(3.6)  # p90 -> +3, no clipping
    assert np.percentile(out[volume > 0], 90) == pytest.approx(3.0)


def test_normalise_zscore_against_hand_computation() -> None:
    volume = np.full((2, 2, 2), 500.0, dtype=np.float32)  # 500 = skull, outside the brain
    brain = np.zeros((2, 2, 2), dtype=bool)
    brain.flat[:5] = True
    volume.flat[:5] = [1, 2, 3, 4, 5]  # mean 3, population std sqrt(2)
    out = normalise_zscore(volume, brain)
    np.testing.assert_allclose(out.flat[:5], (np.arange(1, 6) - 3) / np.sqrt(2), rtol=1e-6)
    assert np.all(out[~brain] == -3.0)


def test_area_resize_equals_block_averaging() -> None:
    x = torch.rand(2, 3, 48, 48)
    expected = x.reshape(2, 3, 16, 3, 16, 3).mean(dim=(3, 5))
    torch.testing.assert_close(resize_area(x, 16, pad_value=-3.0), expected)
    # non-square (ATLAS 197x233): padded symmetrically to a square with the background value first
    y = torch.ones(1, 1, 2, 4)
    out = resize_area(y, 2, pad_value=-3.0)  # padded to 4x4 (one row of -3 above and below), 2x2 blocks
    torch.testing.assert_close(out, torch.full((1, 1, 2, 2), (2 * 1.0 + 2 * -3.0) / 4))


def test_slice_selection_known_answer() -> None:
    lesion = np.zeros((8, 8, 12), dtype=bool)
    lesion[:3, :3, 1] = True  # area 9 but outside slice_range (2, 10)
    lesion[:2, :2, 3] = True  # area 4
    lesion[:2, :3, 5] = True  # area 6  <- largest in range, tie with z=7
    lesion[:3, :2, 7] = True  # area 6
    brain = np.ones_like(lesion)
    brain[:, :, 9] = False  # empty brain: never a healthy slice
    assert select_slices(lesion, brain, (2, 10), "lesion", "largest") == [5]
    assert select_slices(lesion, brain, (2, 10), "lesion", "all") == [3, 5, 7]
    assert select_slices(lesion, brain, (2, 10), "healthy") == [2, 4, 6, 8]
    assert select_slices(lesion, brain, (8, 10), "lesion", "largest") == []
    assert select_slices(lesion, brain, (2, 10), "lesion", "all", step=2) == [3, 7]
    assert select_slices(lesion, brain, (2, 10), "healthy", step=3) == [2, 8]


def test_atlas_template_mask_is_nilearn_mni152_mask_on_its_grid_and_resampled_otherwise() -> None:
    from nilearn.datasets import load_mni152_brain_mask

    template = load_mni152_brain_mask(resolution=1)
    native = mni152_brain_mask(template.shape, template.affine)
    assert template.shape == (197, 233, 189)
    np.testing.assert_array_equal(native, np.asanyarray(template.dataobj) > 0)
    # on the coarse fixture grid: nearest template voxel of every voxel centre, computed by hand
    coarse = mni152_brain_mask(SHAPE, ATLAS_AFFINE)
    ijk = np.stack(np.meshgrid(*[np.arange(s) for s in SHAPE], indexing="ij"), -1).reshape(-1, 3)
    world = ijk @ ATLAS_AFFINE[:3, :3].T + ATLAS_AFFINE[:3, 3]
    exact = (world - template.affine[:3, 3]) @ np.linalg.inv(template.affine[:3, :3]).T
    src = np.rint(exact).astype(int)
    inside = np.all((src >= 0) & (src < template.shape), axis=1)
    expected = np.zeros(len(ijk), dtype=bool)
    expected[inside] = native[tuple(src[inside].T)]
    tie = np.any(np.abs(exact - np.floor(exact) - 0.5) < 1e-6, axis=1)  # two nearest voxels: either is right
    np.testing.assert_array_equal(coarse.reshape(-1)[~tie], expected[~tie])
    assert tie.mean() < 0.2
    assert 0.2 < coarse.mean() < 0.8


# ---------------------------------------------------------------- BraTS end to end


def test_brats_splits_are_disjoint_seeded_and_cover_all_subjects(brats, brats_splits) -> None:
    _, ids = brats
    subjects = {name: set(getattr(brats_splits, name).subjects) for name in ("train", "val", "test")}
    expected = seeded_split(ids, (0.5, 0.25, 0.25), seed=0)
    assert expected["train"] and expected["val"] and expected["test"]
    assert subjects["train"] == set(expected["train"]) and subjects["val"] == set(expected["val"])
    assert subjects["test"] == set(expected["test"])  # every test subject has a lesion in range
    assert brats_splits.name == "brats" and len(brats_splits.preprocess_hash) == 12
    assert brats_splits.train.modalities == BRATS_MODALITIES
    assert brats_splits.train.images.shape[1:] == (4, 16, 16) and brats_splits.train.images.dtype == torch.float32


def test_brats_test_split_is_the_largest_lesion_slice(brats_splits) -> None:
    test = brats_splits.test
    for subject, z in zip(test.subjects, test.slice_index):
        assert z == 9 + int(subject[-5:])  # side-6 lesion, the largest of the subject
    # the 6x6 lesion at x 20..25, y 26..31 touches 3x3 blocks of 3x3 voxels: binarised > 0 after resizing
    assert test.labels.dtype == torch.bool
    assert test.labels.sum(dim=(1, 2)).tolist() == [9] * len(test)


def test_brats_train_and_val_have_no_lesion_voxel(brats_splits) -> None:
    for split in (brats_splits.train, brats_splits.val):
        assert not split.labels.any()
        for subject, z in zip(split.subjects, split.slice_index):
            assert z not in lesion_slices(int(subject[-5:])) and SLICE_RANGE[0] <= z < SLICE_RANGE[1]
        per_subject = {s: split.subjects.count(s) for s in set(split.subjects)}
        assert set(per_subject.values()) == {SLICE_RANGE[1] - SLICE_RANGE[0] - 3}  # all range slices but 3


def test_brats_slices_match_hand_pipeline(brats, brats_splits) -> None:
    """Slice = raw[:, :, z], normalised at raw resolution, then 3x3 block means; brain mask soft."""
    root, _ = brats
    train = brats_splits.train
    k = 5
    subject, z = train.subjects[k], train.slice_index[k]
    i = int(subject[-5:])
    flair = np.asanyarray(nib.load(brats_file(root, i, "flair")).dataobj)
    for c, modality in enumerate(BRATS_MODALITIES):
        raw = np.asanyarray(nib.load(brats_file(root, i, modality)).dataobj).astype(np.float64)
        normalised = np.where(flair > 0, 6 * raw / np.percentile(raw[flair > 0], 90) - 3, -3.0)
        np.testing.assert_allclose(train.images[k, c].numpy(), block_mean(normalised[:, :, z]), atol=1e-5)
    soft = block_mean((flair[:, :, z] > 0).astype(np.float32))
    np.testing.assert_allclose(train.brain[k].numpy(), soft, atol=1e-6)
    assert ((soft > 0) & (soft < 1)).any()  # the disk's edge is soft
    assert train.images[k, 0, 0, 0] == -3.0  # corner block: background only


def test_binarized_brain_mask_is_the_soft_mask_above_one_half(brats, brats_splits, tmp_path) -> None:
    root, _ = brats
    hard = load_splits(make_config("brats", root, tmp_path, binarize_brain=True), progress=False)
    assert set(hard.train.brain.unique().tolist()) == {0.0, 1.0}
    torch.testing.assert_close(hard.train.brain, (brats_splits.train.brain > 0.5).float())
    assert hard.preprocess_hash != brats_splits.preprocess_hash


def test_test_slices_all_takes_every_lesion_slice_in_range(brats, tmp_path) -> None:
    root, _ = brats
    test = load_splits(make_config("brats", root, tmp_path, test_slices="all"), progress=False).test
    for subject in set(test.subjects):
        i = int(subject[-5:])
        z = [z for s, z in zip(test.subjects, test.slice_index) if s == subject]
        assert z == [z for z in sorted(lesion_slices(i)) if SLICE_RANGE[0] <= z < SLICE_RANGE[1]]


def test_eval_slice_step_thins_val_and_test_but_not_train(brats, tmp_path) -> None:
    root, _ = brats
    full = load_splits(make_config("brats", root, tmp_path / "a", test_slices="all"), progress=False)
    thin = load_splits(make_config("brats", root, tmp_path / "b", test_slices="all", eval_slice_step=2), progress=False)
    assert thin.preprocess_hash != full.preprocess_hash
    assert thin.train.slice_index == full.train.slice_index
    for split in ("val", "test"):
        a, b = getattr(full, split), getattr(thin, split)
        for subject in set(a.subjects):
            z_full = [z for s, z in zip(a.subjects, a.slice_index) if s == subject]
            assert [z for s, z in zip(b.subjects, b.slice_index) if s == subject] == z_full[::2]
    with pytest.raises(DatasetError, match="eval_slice_step"):
        load_splits(make_config("brats", root, tmp_path / "c", eval_slice_step=0), progress=False)


def test_eval_slice_step_one_adds_nothing_to_the_hash() -> None:
    config = DatasetConfig(layout="brats", root=Path("/nonexistent/brats"), modalities=("flair", "t1"), image_size=64,
                           test_slices="all")  # fmt: skip
    assert DatasetConfig(**{**vars(config), "eval_slice_step": 1}).preprocess_hash() == config.preprocess_hash()
    assert DatasetConfig(**{**vars(config), "eval_slice_step": 2}).preprocess_hash() != config.preprocess_hash()


def test_preprocess_hash_holds_no_path_and_a_split_file_by_its_content(tmp_path) -> None:
    config = DatasetConfig(layout="brats", root=Path("/data/brats"), modalities=("flair",), image_size=64)
    moved = DatasetConfig(**{**vars(config), "root": tmp_path / "elsewhere", "cache_dir": tmp_path / "cache"})
    assert moved.preprocess_hash() == config.preprocess_hash()
    assert DatasetConfig(**{**vars(config), "image_size": 32}).preprocess_hash() != config.preprocess_hash()

    split = {"train": ["b", "a"], "val": ["c"], "test": ["d"]}
    (tmp_path / "one.json").write_text(json.dumps(split))
    (tmp_path / "two.json").write_text(json.dumps({"test": ["d"], "val": ["c"], "train": ["a", "b"]}, indent=2))
    (tmp_path / "other.json").write_text(json.dumps(split | {"val": ["d"], "test": ["c"]}))
    hashes = {
        name: DatasetConfig(**{**vars(config), "split_file": tmp_path / name}).preprocess_hash()
        for name in ("one.json", "two.json", "other.json")
    }
    assert hashes["one.json"] == hashes["two.json"]  # same subjects per split, other path, order and format
    assert hashes["other.json"] != hashes["one.json"] != config.preprocess_hash()
    (tmp_path / "bad.json").write_text("[1, 2]")
    (tmp_path / "broken.json").write_text('{"train": [')
    for name, message in (("bad.json", "not a mapping of id lists"), ("broken.json", "not valid JSON"),
                          ("missing.json", "does not exist")):  # fmt: skip
        with pytest.raises(DatasetError, match=f"{name}.* {message}"):
            DatasetConfig(**{**vars(config), "split_file": tmp_path / name}).preprocess_hash()
        with pytest.raises(DatasetError, match=f"{name}"):
            read_split_file(tmp_path / name, ["a", "b", "c", "d"])


def test_data_and_cache_copied_elsewhere_load_from_the_cache_with_the_same_identity(tmp_path, monkeypatch) -> None:
    root = tmp_path / "data"
    write_brats(root, n=3)
    config = make_config("brats", root, tmp_path, split_fractions=(0.34, 0.33, 0.33))
    first = load_splits(config, progress=False)
    shutil.copytree(root, tmp_path / "node" / "data")  # copy2: sizes and modification times kept (rsync -a)
    shutil.copytree(tmp_path / "cache", tmp_path / "node" / "cache")
    moved = make_config("brats", tmp_path / "node" / "data", tmp_path / "node", split_fractions=(0.34, 0.33, 0.33))

    reads = []
    real_read = datasets.loader.read_volume
    monkeypatch.setattr(datasets.loader, "read_volume", lambda path: reads.append(path) or real_read(path))
    second = load_splits(moved, progress=False)
    assert reads == []  # the copied cache was used
    assert (second.preprocess_hash, second.data_hash) == (first.preprocess_hash, first.data_hash)
    assert torch.equal(second.test.images, first.test.images)


def test_split_file_and_max_subjects(brats, tmp_path) -> None:
    root, ids = brats
    split_file = tmp_path / "split.json"
    split_file.write_text(json.dumps({"train": ids[3:], "val": [ids[1]], "test": [ids[0], ids[2]]}))
    splits = load_splits(make_config("brats", root, tmp_path, split_file=split_file), progress=False)
    assert set(splits.train.subjects) == set(ids[3:]) and set(splits.val.subjects) == {ids[1]}
    assert set(splits.test.subjects) == {ids[0], ids[2]}
    small = load_splits(make_config("brats", root, tmp_path, split_file=split_file, max_subjects=4), progress=False)
    assert set(small.train.subjects) == {ids[3]} and set(small.test.subjects) == {ids[0], ids[2]}
    seeded = load_splits(make_config("brats", root, tmp_path, max_subjects=3), progress=False)
    assert {s for part in (seeded.train, seeded.val, seeded.test) for s in part.subjects} <= set(ids[:3])


def test_seeded_split_is_deterministic_with_every_split_non_empty() -> None:
    ids = [f"s{i}" for i in range(20)]
    a = seeded_split(ids, (0.79, 0.10, 0.11), seed=0)
    assert a == seeded_split(list(reversed(ids)), (0.79, 0.10, 0.11), seed=0)
    assert [len(a[k]) for k in ("train", "val", "test")] == [16, 2, 2]
    assert sorted(a["train"] + a["val"] + a["test"]) == sorted(ids)
    assert a != seeded_split(ids, (0.79, 0.10, 0.11), seed=1)
    assert [len(v) for v in seeded_split(ids[:3], (0.79, 0.10, 0.11), seed=0).values()] == [1, 1, 1]
    assert [
        len(seeded_split([f"b{i}" for i in range(1251)], (0.79, 0.10, 0.11), 0)[k]) for k in ("train", "val", "test")
    ] == [988, 125, 138]


# ---------------------------------------------------------------- cache


def test_second_load_reads_no_nifti_and_changed_files_are_reread(tmp_path, monkeypatch) -> None:
    root = tmp_path / "data"
    write_brats(root, n=3)
    config = make_config("brats", root, tmp_path, split_fractions=(0.34, 0.33, 0.33))
    first = load_splits(config, progress=False)
    files = sorted(p.name for p in (tmp_path / "cache").iterdir())
    sets = ("train", "val", "val_labelled", "test_slab")
    assert files == sorted(f"brats__{s}__{config.preprocess_hash()}.pt" for s in sets)

    reads = []
    real_read = datasets.loader.read_volume
    monkeypatch.setattr(datasets.loader, "read_volume", lambda path: reads.append(path) or real_read(path))
    second = load_splits(config, progress=False)
    assert reads == []
    for name in sets:
        a, b = getattr(first, name), getattr(second, name)
        assert torch.equal(a.images, b.images) and torch.equal(a.brain, b.brain) and torch.equal(a.labels, b.labels)
        assert a.subjects == b.subjects and a.slice_index == b.slice_index and a.modalities == b.modalities
    assert (second.name, second.preprocess_hash, second.data_hash) == (
        first.name,
        first.preprocess_hash,
        first.data_hash,
    )

    changed = brats_file(root, 0, "t2")
    os.utime(changed, ns=(changed.stat().st_atime_ns, changed.stat().st_mtime_ns + 10**9))
    load_splits(config, progress=False)
    assert changed in reads  # data replaced in place: cache rebuilt, not silently reused


def test_cache_write_is_atomic(tmp_path, monkeypatch) -> None:
    root = tmp_path / "data"
    write_brats(root, n=3)
    config = make_config("brats", root, tmp_path, split_fractions=(0.34, 0.33, 0.33))

    def crash(obj, f):
        f.write(b"half a cache file")
        raise KeyboardInterrupt

    monkeypatch.setattr(datasets.cache.torch, "save", crash)
    with pytest.raises(KeyboardInterrupt):
        load_splits(config, progress=False)
    assert list((tmp_path / "cache").iterdir()) == []  # no cache file, no temporary file
    monkeypatch.undo()
    assert len(load_splits(config, progress=False).train) > 0


def test_default_cache_dir_is_under_cwd_not_the_dataset(tmp_path, monkeypatch) -> None:
    root = tmp_path / "data"
    write_brats(root, n=3)
    before = sorted(root.rglob("*"))
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    config = make_config("brats", root, tmp_path, split_fractions=(0.34, 0.33, 0.33), cache_dir=None)
    load_splits(config, progress=False)
    assert len(list((work / ".slice_cache").glob("*.pt"))) == 4  # train, val, val_labelled, test
    assert sorted(root.rglob("*")) == before


# ---------------------------------------------------------------- ATLAS and ISLES


def test_atlas_nested_release_layout_skull_stripped_with_template(tmp_path) -> None:
    root = tmp_path / "ATLAS_2"
    ids = write_atlas(tmp_path)  # writes tmp_path/ATLAS_2/Training/R001/sub-r001s00X/ses-1/anat/...
    config = make_config("atlas", root, tmp_path)
    splits = load_splits(config, progress=False)
    assert {s for part in (splits.train, splits.val, splits.test) for s in part.subjects} == set(ids)
    for subject, z in zip(splits.test.subjects, splits.test.slice_index):
        assert z == 9 + int(subject[-3:]) - 1
    assert splits.train.modalities == ("t1",) and not splits.train.labels.any()

    layout = get_layout("atlas")
    files = layout.subject_files(ids[0], atlas_file(root.parent, 0, "T1w").parent, ("t1",))
    volumes = read_subject(layout, files, config)
    np.testing.assert_array_equal(volumes.brain, mni152_brain_mask(SHAPE, ATLAS_AFFINE))
    t1 = volumes.images[0]
    assert np.all(t1[~volumes.brain] == -3.0)  # skull (bright in the raw T1) stripped to the background
    assert t1[volumes.brain].mean() == pytest.approx(0.0, abs=1e-5)
    assert t1[volumes.brain].std() == pytest.approx(1.0, abs=1e-5)


def test_isles_layout_ot_label_and_zscore(tmp_path) -> None:
    root = tmp_path / "SISS2015_Training"
    ids = write_isles(root)
    config = make_config("isles", root, tmp_path)
    splits = load_splits(config, progress=False)
    assert splits.test.modalities == ("flair", "t1", "t2", "dwi")
    assert {s for part in (splits.train, splits.val, splits.test) for s in part.subjects} == set(ids)
    for subject, z in zip(splits.test.subjects, splits.test.slice_index):
        assert z == 9 + int(subject) - 1
    assert splits.test.labels.sum(dim=(1, 2)).tolist() == [9] * len(splits.test)

    layout = get_layout("isles")
    files = layout.subject_files("2", root / "2", config.modalities)
    assert files.label.name.startswith("VSD.Brain_3more.XX.O.OT.")
    volumes = read_subject(layout, files, config)
    for image in volumes.images:
        assert image[volumes.brain].mean() == pytest.approx(0.0, abs=1e-5)
        assert image[volumes.brain].std() == pytest.approx(1.0, abs=1e-5)
        assert np.all(image[~volumes.brain] == -3.0)


def test_files_are_found_case_insensitively_as_nii_or_nii_gz(tmp_path) -> None:
    root = tmp_path / "data"
    write_brats(root, n=3)
    flair = brats_file(root, 1, "flair")
    write_nifti(flair.with_name("BraTS2021_00001_FLAIR.nii"), np.asanyarray(nib.load(flair).dataobj), LPS_AFFINE)
    flair.unlink()
    splits = load_splits(make_config("brats", root, tmp_path, split_fractions=(0.34, 0.33, 0.33)), progress=False)
    assert "BraTS2021_00001" in splits.train.subjects + splits.val.subjects + splits.test.subjects


# ---------------------------------------------------------------- bad input: clear errors


def _replace(path: Path, change) -> None:
    """Rewrite a NIfTI file with ``change(data)`` applied to a float copy of its data."""
    image = nib.load(path)
    data = np.asanyarray(image.dataobj).astype(np.float32)
    data = change(data)
    path.unlink()
    write_nifti(path, data, image.affine)


def _nan(d):
    d[1, 2, 3] = np.nan
    return d


def _inf(d):
    d[1, 2, 3] = np.inf
    return d


def _value(v):
    def change(d):
        d[20, 26, 7] = v
        return d

    return change


BRATS_CASES = {
    "missing modality": (lambda r: brats_file(r, 1, "t2").unlink(), ["missing", "BraTS2021_00001_t2.nii.gz"]),
    "missing label": (lambda r: brats_file(r, 2, "seg").unlink(), ["missing", "BraTS2021_00002_seg.nii.gz"]),
    "modality shapes differ": (
        lambda r: _replace(brats_file(r, 1, "t1"), lambda d: d[:, :, :-1]),
        ["BraTS2021_00001_t1.nii.gz", "shape (48, 48, 23)", "BraTS2021_00001_flair", "one voxel grid"],
    ),
    "label shape differs": (
        lambda r: _replace(brats_file(r, 0, "seg"), lambda d: d[:-2]),
        ["BraTS2021_00000_seg.nii.gz", "shape (46, 48, 24)", "one voxel grid"],
    ),
    "nan voxel": (
        lambda r: _replace(brats_file(r, 2, "t1ce"), _nan),
        ["BraTS2021_00002_t1ce.nii.gz", "NaN/inf", "finite"],
    ),
    "inf voxel": (lambda r: _replace(brats_file(r, 0, "flair"), _inf), ["BraTS2021_00000_flair.nii.gz", "NaN/inf"]),
    "empty brain mask": (
        lambda r: _replace(brats_file(r, 1, "flair"), np.zeros_like),
        ["BraTS2021_00001_flair.nii.gz", "empty brain mask", "first modality > 0"],
    ),
    "label value outside set": (
        lambda r: _replace(brats_file(r, 2, "seg"), _value(3)),
        ["BraTS2021_00002_seg.nii.gz", "[3.0]", "[0, 1, 2, 4]"],
    ),
    "unreadable file": (
        lambda r: brats_file(r, 0, "t1").write_bytes(b"not nifti"),
        ["BraTS2021_00000_t1.nii.gz", "cannot read"],
    ),
}


@pytest.mark.parametrize("case", list(BRATS_CASES))
def test_bad_brats_input_names_file_and_expectation(case, tmp_path) -> None:
    root = tmp_path / "data"
    write_brats(root, n=3)
    damage, expected = BRATS_CASES[case]
    damage(root)
    with pytest.raises(DatasetError) as error:
        load_splits(make_config("brats", root, tmp_path, split_fractions=(0.34, 0.33, 0.33)), progress=False)
    assert str(root) in str(error.value)  # the full path of the file at fault
    for text in expected:
        assert text in str(error.value)
    assert not (tmp_path / "cache").exists() or not list((tmp_path / "cache").iterdir())


def test_bad_atlas_and_isles_labels_and_missing_files(tmp_path) -> None:
    atlas = tmp_path / "atlas"
    write_atlas(atlas, n=3)
    _replace(atlas_file(atlas, 1, "label-L_desc-T1lesion_mask"), _value(2))
    with pytest.raises(
        DatasetError, match=r"sub-r001s002_ses-1_.*mask\.nii\.gz: label values \[2\.0\] outside .*\[0, 1\]"
    ):
        load_splits(make_config("atlas", atlas, tmp_path, split_fractions=(0.34, 0.33, 0.33)), progress=False)
    atlas_file(atlas, 1, "label-L_desc-T1lesion_mask").unlink()
    with pytest.raises(
        DatasetError,
        match=r"missing lesion mask of sub-r001s002: expected .*anat/sub-r001s002_ses-1_space-MNI152NLin2009aSym"
        r"_label-L_desc-T1lesion_mask\.nii\.gz .*point the root at ATLAS_2/Training",
    ):
        load_splits(make_config("atlas", atlas, tmp_path, split_fractions=(0.34, 0.33, 0.33)), progress=False)

    isles = tmp_path / "isles"
    write_isles(isles, n=3)
    _replace(isles_file(isles, 2, "OT"), _value(2))
    with pytest.raises(
        DatasetError, match=r"VSD\.Brain_3more\.XX\.O\.OT\.\d+\.nii: label values \[2\.0\] outside the ISLES"
    ):
        load_splits(make_config("isles", isles, tmp_path, split_fractions=(0.34, 0.33, 0.33)), progress=False)
    isles_file(isles, 0, "DWI").unlink()
    with pytest.raises(
        DatasetError,
        match=r"missing dwi image of ISLES subject 1: expected "
        r".*/1/VSD\.Brain\.XX\.O\.MR_DWI\.<id>/VSD\.Brain\.XX\.O\.MR_DWI\.<id>\.nii",
    ):
        load_splits(make_config("isles", isles, tmp_path, split_fractions=(0.34, 0.33, 0.33)), progress=False)


def test_bad_roots_modalities_splits_and_ranges(tmp_path) -> None:
    with pytest.raises(DatasetError, match=r"dataset root .*nowhere does not exist; expected the BraTS 2021 folder"):
        load_splits(make_config("brats", tmp_path / "nowhere", tmp_path), progress=False)
    (tmp_path / "empty").mkdir()
    for layout, pattern in [("brats", "BraTS2021_XXXXX"), ("atlas", "T1w"), ("isles", "<n>")]:
        with pytest.raises(DatasetError, match=rf"no .* subject found under .*empty: expected .*{pattern}"):
            load_splits(make_config(layout, tmp_path / "empty", tmp_path), progress=False)

    root = tmp_path / "data"
    ids = write_brats(root, n=3)
    with pytest.raises(DatasetError, match=r"unknown modality 'dwi'; expected one of \['flair', 't1', 't1ce', 't2'\]"):
        load_splits(make_config("brats", root, tmp_path, modalities=("flair", "dwi")), progress=False)
    with pytest.raises(DatasetError, match=r"unknown modality 't1ce'.*\['t1'\]"):
        load_splits(make_config("atlas", root, tmp_path, modalities=("t1ce",)), progress=False)
    with pytest.raises(DatasetError, match=r"BraTS2021_0000\d_flair\.nii\.gz: 24 axial slices; expected at least 30"):
        load_splits(
            make_config("brats", root, tmp_path, slice_range=(4, 30), split_fractions=(0.34, 0.33, 0.33)),
            progress=False,
        )
    with pytest.raises(DatasetError, match=r"no lesion slice in slice_range \(0, 4\) among the 1 test subject\(s\)"):
        load_splits(
            make_config("brats", root, tmp_path, slice_range=(0, 4), split_fractions=(0.34, 0.33, 0.33)), progress=False
        )
    with pytest.raises(DatasetError, match=r"2 subject\(s\) in .*: a seeded train/val/test split needs at least 3"):
        load_splits(make_config("brats", root, tmp_path, max_subjects=2), progress=False)

    split_file = tmp_path / "split.json"
    split_file.write_text(json.dumps({"train": [ids[0], "BraTS2021_99999"], "val": [ids[1]], "test": [ids[2]]}))
    with pytest.raises(DatasetError, match=r"split\.json: 1 subject id\(s\) not found in .*\['BraTS2021_99999'\]"):
        load_splits(make_config("brats", root, tmp_path, split_file=split_file), progress=False)
    split_file.write_text(json.dumps({"train": ids[:2], "test": ids[2:]}))
    with pytest.raises(DatasetError, match=r"split\.json has keys \['test', 'train'\]; expected exactly"):
        load_splits(make_config("brats", root, tmp_path, split_file=split_file), progress=False)


def test_config_change_uses_a_new_cache_file(brats, tmp_path) -> None:
    root, _ = brats
    config = make_config("brats", root, tmp_path)
    load_splits(config, progress=False)
    other = dataclasses.replace(config, image_size=24)
    assert load_splits(other, progress=False).train.image_size == (24, 24)
    assert len(list((tmp_path / "cache").glob("*.pt"))) == 8  # 4 slice sets x 2 configs


def test_a_subject_copied_under_another_letter_case_is_refused_naming_both(tmp_path: Path) -> None:
    root = tmp_path / "brats"
    write_brats(root, n=4)
    shutil.copytree(root / "BraTS2021_00001", root / "brats2021_00001")
    with pytest.raises(DatasetError, match="appears twice") as info:
        load_splits(make_config("brats", root, tmp_path), progress=False)
    assert str(root / "BraTS2021_00001") in str(info.value) and str(root / "brats2021_00001") in str(info.value)


def _same_slices(a, b) -> None:
    for name in ("train", "val", "test"):
        x, y = getattr(a, name), getattr(b, name)
        assert len(x.subjects) == len(y.subjects) and len(x.subjects) > 0
        for field in ("images", "brain", "labels"):
            torch.testing.assert_close(getattr(x, field), getattr(y, field), rtol=0, atol=0)


def test_brats2023_naming_loads_the_same_slices_as_brats2021(brats, tmp_path) -> None:
    root = tmp_path / "ASNR-MICCAI-BraTS2023-GLI-Challenge-TrainingData"
    ids = write_brats2023(root)
    assert ids[0] == "BraTS-GLI-00000-000" and brats2023_file(root, 0, "t2f").is_file()
    seg = np.asanyarray(nib.load(brats2023_file(root, 2, "seg")).dataobj)
    assert set(np.unique(seg).tolist()) == {0, 3}  # 2021's label 4 is 3
    assert set().union(*(np.unique(nib.load(brats2023_file(root, i, "seg")).dataobj).tolist() for i in range(3))) == {
        0,
        1,
        2,
        3,
    }
    old_root, old_ids = brats
    parts = {"train": [0, 1, 2], "val": [3], "test": [4, 5]}  # the same subjects in both (seeded splits hash ids)
    split_files = {}
    for name, names in (("2021", old_ids), ("2023", ids)):
        split_files[name] = tmp_path / f"split{name}.json"
        split_files[name].write_text(json.dumps({k: [names[i] for i in v] for k, v in parts.items()}))
    new = load_splits(make_config("brats2023", root, tmp_path / "c", split_file=split_files["2023"]), progress=False)
    old = load_splits(make_config("brats", old_root, tmp_path / "d", split_file=split_files["2021"]), progress=False)
    _same_slices(new, old)
    assert [s.split("-")[2] for s in new.test.subjects] == [s.split("_")[1] for s in old.test.subjects]
    assert new.test.slice_index == old.test.slice_index


def test_brats2023_met_collection_loads(tmp_path) -> None:
    root = tmp_path / "met"
    ids = write_brats2023(root, n=4, prefix="BraTS-MET")
    assert ids[0] == "BraTS-MET-00000-000"
    splits = load_splits(make_config("brats2023", root, tmp_path), progress=False)
    assert sorted({*splits.train.subjects, *splits.val.subjects, *splits.test.subjects}) == ids


def test_brats2023_missing_t2f_names_the_file_and_pattern(tmp_path) -> None:
    root = tmp_path / "gli"
    write_brats2023(root, n=3)
    brats2023_file(root, 1, "t2f").unlink()
    with pytest.raises(DatasetError) as error:
        load_splits(make_config("brats2023", root, tmp_path, split_fractions=(0.34, 0.33, 0.33)), progress=False)
    message = str(error.value)
    assert "flair image of BraTS-GLI-00001-000" in message
    assert str(brats2023_file(root, 1, "t2f")) in message and ".nii or .nii.gz" in message


def test_brats2023_files_are_found_case_insensitively_as_nii(tmp_path) -> None:
    root = tmp_path / "gli"
    write_brats2023(root, n=1)
    t1c = brats2023_file(root, 0, "t1c")
    t1c.rename(t1c.parent / "brats-gli-00000-000-T1C.nii.gz")
    files = get_layout("brats2023").subject_files("BraTS-GLI-00000-000", t1c.parent, BRATS_MODALITIES)
    assert [p.name.lower().split("-")[-1] for p in files.images] == [
        "t2f.nii.gz",
        "t1n.nii.gz",
        "t1c.nii.gz",
        "t2w.nii.gz",
    ]


def test_label_value_errors_name_the_release_the_values_look_like(tmp_path) -> None:
    split = dict(split_fractions=(0.34, 0.33, 0.33))
    brats2021 = tmp_path / "b21"
    write_brats(brats2021, n=3)
    for i in range(3):  # 2021 naming, 2023 labels
        _replace(brats_file(brats2021, i, "seg"), lambda d: np.where(d == 4, 3, d))
    with pytest.raises(
        DatasetError,
        match=r"BraTS2021_0000\d_seg\.nii\.gz: label values \[3\.0\] outside the BraTS 2021 label set "
        r"\[0, 1, 2, 4\] \(values \{[123,]+\}: BraTS 2023 scheme\? use dataset=brats2023\)",
    ):
        load_splits(make_config("brats", brats2021, tmp_path / "a", **split), progress=False)
    for i in range(3):  # BraTS 2015-2017: 1, 2, 3 and 4
        _replace(brats_file(brats2021, i, "seg"), _value(4))
    with pytest.raises(DatasetError, match=r"\(values \{1?,?2?,?3,4\}: BraTS 2015-2017 scheme\?"):
        load_splits(make_config("brats", brats2021, tmp_path / "b", **split), progress=False)

    brats2023 = tmp_path / "b23"
    write_brats2023(brats2023, n=3)
    for i in range(3):  # 2023 naming, 2021 labels
        _replace(brats2023_file(brats2023, i, "seg"), lambda d: np.where(d == 3, 4, d))
    with pytest.raises(
        DatasetError,
        match=r"label values \[4\.0\] outside the BraTS 2023 label set \[0, 1, 2, 3\] "
        r"\(values \{[124,]+\}: BraTS 2018-2021 scheme\? use dataset=brats\)",
    ):
        load_splits(make_config("brats2023", brats2023, tmp_path / "c", **split), progress=False)


# ---------------------------------------------------------------- copies as users have them


def _copy_dataset(source: Path, target: Path, change) -> None:
    """``source`` copied to ``target`` volume by volume: ``change(src, dst)`` writes one, or returns None to copy."""
    for src in sorted(source.rglob("*.nii*")):
        dst = target / src.relative_to(source)
        dst.parent.mkdir(parents=True, exist_ok=True)
        if change(src, dst) is None:
            shutil.copyfile(src, dst)


def _reoriented(flip_xy: bool = False, swap_xy: bool = False, only: str = ""):
    def change(src: Path, dst: Path):
        return reoriented_copy(src, dst, flip_xy, swap_xy) if only in src.name else None

    return change


def _same_splits(a, b) -> None:
    _same_slices(a, b)
    torch.testing.assert_close(a.val_labelled.images, b.val_labelled.images, rtol=0, atol=0)
    assert (a.test.subjects, a.test.slice_index, a.data_hash) == (b.test.subjects, b.test.slice_index, b.data_hash)


def test_a_copy_reoriented_to_ras_loads_the_original_slices_and_says_so_once(brats, tmp_path, caplog) -> None:
    root, _ = brats
    ras = tmp_path / "ras"
    _copy_dataset(root, ras, _reoriented(flip_xy=True))
    image = nib.load(brats_file(ras, 0, "flair"))
    assert nib.aff2axcodes(image.affine) == ("R", "A", "S") and nib.aff2axcodes(LPS_AFFINE) == ("L", "P", "S")
    original = np.asanyarray(nib.load(brats_file(root, 0, "flair")).dataobj)
    assert not np.array_equal(np.asanyarray(image.dataobj), original)  # other raw slices without reorientation
    np.testing.assert_array_equal(np.asanyarray(image.dataobj)[::-1, ::-1], original)

    reference = load_splits(make_config("brats", root, tmp_path / "a"), progress=False)
    with caplog.at_level("INFO", logger="datasets.orientation"):
        copy = load_splits(make_config("brats", ras, tmp_path / "b"), progress=False)
    _same_splits(copy, reference)
    notes = [r.getMessage() for r in caplog.records if "reoriented" in r.getMessage()]
    assert len(notes) == 1 and "orientation RAS, reoriented to the release's LPS" in notes[0]  # 30 volumes, 1 line


def test_orientation_error_names_the_file_and_both_orientations(brats, tmp_path) -> None:
    root, _ = brats
    ras = tmp_path / "ras"
    _copy_dataset(root, ras, _reoriented(flip_xy=True, only="_t1ce"))
    with pytest.raises(DatasetError) as error:
        load_splits(make_config("brats", ras, tmp_path, orientation="error"), progress=False)
    message = str(error.value)
    assert "_t1ce.nii.gz: orientation RAS" in message and str(ras) in message
    assert "expected LPS as BraTS 2021 is released" in message and "dataset.orientation=reorient" in message
    with pytest.raises(DatasetError, match=r"orientation='sideways'; expected one of \['reorient', 'error'\]"):
        load_splits(make_config("brats", ras, tmp_path, orientation="sideways"), progress=False)


def test_a_label_in_another_orientation_than_its_images_ends_on_their_grid(brats, tmp_path) -> None:
    root, _ = brats
    copy = tmp_path / "pls_seg"
    _copy_dataset(root, copy, _reoriented(swap_xy=True, only="_seg"))  # x and y swapped: PLS
    assert nib.aff2axcodes(nib.load(brats_file(copy, 0, "seg")).affine) == ("P", "L", "S")
    reference = load_splits(make_config("brats", root, tmp_path / "a"), progress=False)
    _same_splits(load_splits(make_config("brats", copy, tmp_path / "b"), progress=False), reference)
    with pytest.raises(DatasetError, match=r"_seg\.nii\.gz: orientation PLS .*expected LPS"):
        load_splits(make_config("brats", copy, tmp_path / "c", orientation="error"), progress=False)


def test_atlas_copy_in_lps_is_reoriented_to_the_template_ras_with_its_affine(tmp_path) -> None:
    write_atlas(tmp_path / "orig")
    lps = tmp_path / "lps"
    _copy_dataset(tmp_path / "orig", lps, _reoriented(flip_xy=True))
    assert nib.aff2axcodes(nib.load(atlas_file(lps, 0, "T1w")).affine) == ("L", "P", "S")
    reference = load_splits(make_config("atlas", tmp_path / "orig", tmp_path / "a"), progress=False)
    # the template brain mask follows the affine: wrong affine after the flip = another mask
    _same_splits(load_splits(make_config("atlas", lps, tmp_path / "b"), progress=False), reference)


def test_a_degenerate_affine_is_a_clear_error(tmp_path) -> None:
    root = tmp_path / "data"
    write_brats(root, n=3)
    t2 = brats_file(root, 1, "t2")
    header = nib.Nifti1Header()
    header.set_sform(np.diag([1.0, 0.0, 1.0, 1.0]), code="scanner")  # a zero y axis (the qform cannot hold it)
    nib.save(nib.Nifti1Image(np.asanyarray(nib.load(t2).dataobj), None, header), t2)
    assert nib.aff2axcodes(nib.load(t2).affine) == ("R", None, "S")
    with pytest.raises(DatasetError, match=r"BraTS2021_00001_t2\.nii\.gz: affine .* has no orientation"):
        load_splits(make_config("brats", root, tmp_path, split_fractions=(0.34, 0.33, 0.33)), progress=False)


def test_normalise_p90_sets_the_background_from_the_brain_mask() -> None:
    volume = np.full((4, 4, 4), -1024.0, dtype=np.float32)
    brain = np.zeros((4, 4, 4), dtype=bool)
    brain.flat[:11] = True
    volume.flat[:11] = np.arange(1, 12)  # brain values 1..11: p90 over the brain = 10, whatever the background
    out = normalise_p90(volume, brain)
    np.testing.assert_allclose(out[brain], 6 * np.arange(1, 12) / 10 - 3, atol=1e-6)
    assert np.all(out[~brain] == -3.0)  # not 6 * -1024 / 10 - 3
    with pytest.raises(DatasetError, match=r"x\.nii: 90th percentile 0 inside the brain mask"):
        normalise_p90(np.zeros((2, 2, 2), dtype=np.float32), np.ones((2, 2, 2), dtype=bool), "x.nii")


def test_a_non_zero_background_in_a_second_modality_loads_as_minus_three(brats, tmp_path) -> None:
    root, _ = brats
    copy = tmp_path / "ct_background"

    def background(src: Path, dst: Path):
        if not src.name.endswith("_t1.nii.gz"):
            return None
        image = nib.load(src)
        data = np.asanyarray(image.dataobj)
        return write_nifti(dst, np.where(data > 0, data, -1024).astype(np.float32), image.affine)

    _copy_dataset(root, copy, background)
    assert np.asanyarray(nib.load(brats_file(copy, 0, "t1")).dataobj).min() == -1024
    reference = load_splits(make_config("brats", root, tmp_path / "a"), progress=False)
    shifted = load_splits(make_config("brats", copy, tmp_path / "b"), progress=False)
    _same_splits(shifted, reference)  # same brain values, background exactly -3
    t1 = shifted.train.images[:, 1]
    assert t1[shifted.train.brain == 0].unique().tolist() == [-3.0]


def _brats_labels_replaced(tmp_path: Path, change) -> Path:
    root = tmp_path / "relabelled"
    write_brats(root)
    for i in range(6):
        _replace(brats_file(root, i, "seg"), change)
    return root


def test_label_map_maps_raw_values_before_the_check(brats, tmp_path) -> None:
    root, _ = brats
    as_2023 = _brats_labels_replaced(tmp_path, lambda d: np.where(d == 4, 3, d))
    with pytest.raises(DatasetError) as error:
        load_splits(make_config("brats", as_2023, tmp_path / "a"), progress=False)
    assert (
        "BraTS 2023 scheme? use dataset=brats2023); to keep this layout, map them with dataset.label_map, e.g. "
        "'dataset.label_map={3: 1}' (raw value: value of the label set)"
    ) in str(error.value)

    reference = load_splits(make_config("brats", root, tmp_path / "b"), progress=False)
    back = load_splits(make_config("brats", as_2023, tmp_path / "c", label_map=((3, 4),)), progress=False)
    _same_splits(back, reference)  # 3 -> 4 restores the files' 2021 labels
    merged = load_splits(make_config("brats", as_2023, tmp_path / "d", label_map=((3, 1),)), progress=False)
    _same_splits(merged, reference)  # lesion = label > 0 either way
    assert len({reference.preprocess_hash, back.preprocess_hash, merged.preprocess_hash}) == 3
    assert (
        make_config("brats", root, tmp_path, label_map=((3, 1), (2, 0))).preprocess_hash()
        == make_config("brats", root, tmp_path, label_map=((2, 0), (3, 1))).preprocess_hash()
    )
    assert make_config("brats", root, tmp_path, label_map=None).preprocess_hash() == reference.preprocess_hash
    assert make_config("brats", root, tmp_path, orientation="error").preprocess_hash() == reference.preprocess_hash


def test_label_map_enhancing_and_necrosis_only_drops_oedema(brats, tmp_path) -> None:
    root, ids = brats
    split_file = tmp_path / "split.json"  # test: subject 1 (oedema, label 2, and one voxel of 4), 2 (label 4)
    split_file.write_text(json.dumps({"train": ids[3:], "val": ids[:1], "test": ids[1:3]}))
    core_only = ((1, 1), (2, 0), (4, 1))
    config = make_config("brats", root, tmp_path, test_slices="all", split_file=split_file, label_map=core_only)
    test = load_splits(config, progress=False).test
    for k, (subject, z) in enumerate(zip(test.subjects, test.slice_index)):
        seg = np.asanyarray(nib.load(brats_file(root, int(subject[-5:]), "seg")).dataobj)[:, :, z]
        core = np.isin(seg, (1, 4)).reshape(16, 3, 16, 3).any(axis=(1, 3))  # any core voxel in a 3x3 block
        np.testing.assert_array_equal(test.labels[k].numpy(), core)
    assert list(zip(test.subjects, test.slice_index)) == [(ids[1], 10), (ids[2], 8), (ids[2], 11), (ids[2], 14)]
    assert test.labels[0].sum() == 1  # the one voxel of 4 left of subject 1's lesions


@pytest.mark.parametrize(
    ("label_map", "expected"),
    [
        ((("enhancing", 1),), r"dataset\.label_map: key 'enhancing' is not an integer"),
        (((4, 1.5),), r"dataset\.label_map: 4: 1\.5; expected a value of the BraTS 2021 label set \[0, 1, 2, 4\]"),
        (((4, 3),), r"dataset\.label_map: 4: 3; expected a value of the BraTS 2021 label set"),
        (((4, 1), (4, 0)), r"dataset\.label_map: raw value 4 given twice"),
        (((4,),), r"dataset\.label_map: entry \(4,\); expected \(raw value, new value\) pairs"),
    ],
)
def test_bad_label_maps_are_refused_before_any_volume_is_read(label_map, expected, brats, tmp_path, monkeypatch):
    root, _ = brats
    monkeypatch.setattr(datasets.loader, "read_volume", lambda path: pytest.fail(f"read {path}"))
    with pytest.raises(DatasetError, match=expected):
        load_splits(make_config("brats", root, tmp_path, label_map=label_map), progress=False)


def test_the_shipped_example_split_file_loads(tmp_path) -> None:
    example = Path(__file__).resolve().parents[2] / "configs" / "dataset" / "splits" / "example.json"
    root = tmp_path / "data"
    write_brats(root, n=7)
    splits = load_splits(make_config("brats", root, tmp_path, split_file=example), progress=False)
    expected = json.loads(example.read_text())
    assert sorted(set(splits.train.subjects)) == expected["train"] and set(splits.val.subjects) == set(expected["val"])
    assert list(splits.test.subjects) == expected["test"]
