"""Tests of the synthetic brain-lesion generator (datasets/synthetic*.py).

Generation happens once per layout (module-scoped fixtures, 1–3 small subjects); the size-range and
shape checks use :func:`subject_labels`, which draws only the lesion masks.
"""

from __future__ import annotations

import json
import socket
import time
from dataclasses import replace
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from scipy import ndimage as ndi

import datasets.synthetic as synthetic
from datasets.synthetic import (
    DESCRIPTION,
    FIGURE,
    IN_PROGRESS,
    MARKER,
    SyntheticConfig,
    ensure_synthetic_dataset,
    generate_subject,
    subject_families,
    subject_labels,
    subject_plan,
    synthetic_dataset_hash,
)
from datasets.synthetic_anatomy import load_templates
from datasets.synthetic_io import LABEL, display_axial, subject_files

BRATS = SyntheticConfig(n_subjects=2, seed=3)
Z0, Z1 = BRATS.slice_range
GRID_128 = (240 / 128) ** 2  # area factor of the 240 -> 128 resize


def _relative_files(root: Path) -> set[str]:
    """The set's files as a user sees them: not the generator's hidden markers and per-subject records."""
    relative = (p.relative_to(root) for p in root.rglob("*") if p.is_file())
    return {str(p) for p in relative if not any(part.startswith(".") for part in p.parts)}


def _load(path: Path) -> tuple[np.ndarray, nib.Nifti1Image]:
    img = nib.load(str(path))
    return np.asanyarray(img.dataobj), img


@pytest.fixture(scope="module")
def brats_root(tmp_path_factory) -> Path:
    return ensure_synthetic_dataset(tmp_path_factory.mktemp("brats"), BRATS, workers=2, progress=False)


@pytest.fixture(scope="module")
def subjects() -> dict[str, object]:
    """One tumour and one stroke subject of BRATS, in memory, with their tissue maps."""
    families = subject_families(BRATS)
    return {fam: generate_subject(BRATS, families.index(fam), with_tissue=True) for fam in ("tumour", "stroke")}


def test_templates_load_offline(monkeypatch):
    def no_network(*args, **kwargs):
        raise AssertionError("the MNI152 templates must load without network access")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.setattr(socket, "create_connection", no_network)
    load_templates.cache_clear()
    t = load_templates()
    assert t.gm.shape == t.wm.shape == t.brain.shape == (197, 233, 189)
    assert set(np.unique(t.brain)) == {0.0, 1.0}
    assert (t.gm + t.wm <= 1.0 + 1e-5).all()


def test_brats_file_names_are_exact(brats_root):
    expected = {"dataset_description.json", "samples.png"}
    for i in range(BRATS.n_subjects):
        sid = f"BraTS2021_{i:05d}"
        expected |= {f"{sid}/{sid}_{m}.nii.gz" for m in ("flair", "t1", "t1ce", "t2", "seg")}
    assert _relative_files(brats_root) == expected
    assert json.loads((brats_root / MARKER).read_text())["config_hash"] == BRATS.config_hash()
    assert not (brats_root / IN_PROGRESS).exists()


def test_brats_volumes_look_like_brats(brats_root):
    for i in range(BRATS.n_subjects):
        files = subject_files(brats_root, "brats", i)
        seg, seg_img = _load(files[LABEL])
        assert seg.shape == (240, 240, 155) and seg.dtype == np.uint8
        assert set(np.unique(seg)) <= {0, 1, 2, 4}
        assert nib.aff2axcodes(seg_img.affine) == ("L", "P", "S")
        assert seg_img.header.get_zooms() == (1.0, 1.0, 1.0)
        supports = []
        for m in ("flair", "t1", "t1ce", "t2"):
            image, img = _load(files[m])
            assert image.shape == (240, 240, 155) and image.dtype == np.int16
            np.testing.assert_array_equal(img.affine, seg_img.affine)
            supports.append(image > 0)
        for support in supports[1:]:  # one skull-stripping mask for every contrast, as in BraTS
            np.testing.assert_array_equal(support, supports[0])
        assert not (seg > 0)[~supports[0]].any(), "lesion voxels outside the brain"


def test_background_exactly_zero_outside_brain(subjects):
    for subject in subjects.values():
        brain = subject.tissue["brain"]
        assert 1.2e6 < brain.sum() < 2.5e6
        for m, image in subject.images.items():
            assert (image[~brain] == 0).all(), m
            assert (image[brain] > 0).all(), m


def _tissue_means(subject, modality: str) -> dict[str, float]:
    lesion_near = ndi.binary_dilation(subject.label > 0, iterations=5)
    image = subject.images[modality].astype(np.float64)
    means = {}
    for tissue in ("wm", "gm", "csf"):
        pure = (subject.tissue[tissue] > 0.9) & ~lesion_near
        means[tissue] = float(image[pure].mean())
    return means


def test_contrast_ordering(subjects):
    for subject in subjects.values():
        t1, t1ce = _tissue_means(subject, "t1"), _tissue_means(subject, "t1ce")
        t2, flair = _tissue_means(subject, "t2"), _tissue_means(subject, "flair")
        assert t1["wm"] > t1["gm"] > t1["csf"]
        assert t1ce["wm"] > t1ce["gm"] > t1ce["csf"]
        assert t2["csf"] > t2["gm"] > t2["wm"]
        assert flair["gm"] >= flair["wm"] > flair["csf"]
        assert flair["csf"] < 0.6 * flair["wm"]  # FLAIR: fluid suppressed


def test_lesion_contrast_is_realistic(subjects):
    for family, subject in subjects.items():
        lesion = subject.label > 0
        for m, low, high in (("flair", 1.15, 2.2), ("t2", 1.15, 3.0), ("t1", 0.3, 0.92)):
            wm = _tissue_means(subject, m)["wm"]
            ratio = subject.images[m][lesion].mean() / wm
            assert low < ratio < high, (family, m, ratio)
    tumour = subjects["tumour"]
    t1ce_wm = _tissue_means(tumour, "t1ce")["wm"]
    enhancing = tumour.label == 4
    assert enhancing.any() and tumour.images["t1ce"][enhancing].mean() > 1.2 * t1ce_wm
    assert tumour.images["t1"][enhancing].mean() < _tissue_means(tumour, "t1")["wm"]
    assert set(np.unique(subjects["stroke"].label)) == {0, 2}


def test_healthy_and_lesion_slices_in_range(brats_root):
    for i in range(BRATS.n_subjects):
        seg, _ = _load(subject_files(brats_root, "brats", i)[LABEL])
        lesion_slices = (seg[:, :, Z0:Z1] > 0).any(axis=(0, 1))
        assert lesion_slices.sum() >= BRATS.min_lesion_slices
        assert (~lesion_slices).sum() >= BRATS.min_healthy_slices


def test_deterministic_across_workers_and_seeded(brats_root, subjects):
    families = subject_families(BRATS)
    for family, subject in subjects.items():  # written by 2 worker processes == generated in-process
        files = subject_files(brats_root, "brats", families.index(family))
        for m, image in subject.images.items():
            np.testing.assert_array_equal(_load(files[m])[0], image)
        np.testing.assert_array_equal(_load(files[LABEL])[0], subject.label)
        # the cheap lesion-only path gives the very label the generator writes
        np.testing.assert_array_equal(subject_labels(BRATS, families.index(family)), subject.label)
    other = subject_labels(replace(BRATS, seed=4), 0)
    assert not np.array_equal(other, _load(subject_files(brats_root, "brats", 0)[LABEL])[0])


def test_description_matches_volumes(brats_root):
    description = json.loads((brats_root / DESCRIPTION).read_text())
    assert description["config_hash"] == BRATS.config_hash() == synthetic_dataset_hash(brats_root)
    assert [s["family"] for s in description["subjects"]] == subject_families(BRATS)
    for i, record in enumerate(description["subjects"]):
        seg, _ = _load(subject_files(brats_root, "brats", i)[LABEL])
        assert record["lesion_voxels"] == int((seg > 0).sum())
        assert record["label_voxels"] == {str(v): int((seg == v).sum()) for v in (1, 2, 4) if (seg == v).any()}
        assert record["largest_slice"]["area_px"] == int((seg[:, :, Z0:Z1] > 0).sum((0, 1)).max())


def test_sample_figure_is_written(brats_root):
    import matplotlib.image

    image = matplotlib.image.imread(str(brats_root / FIGURE))
    assert image.shape[0] > 500 and image.shape[1] > 500


def test_lateral_ventricles_lie_in_the_slice_range(subjects):
    # CSF in the central 60 x 80 mm of the axial plane is mostly the lateral ventricles: as in real
    # BraTS, most of it lies in z 70-89
    for subject in subjects.values():
        central_csf = (subject.tissue["csf"][90:150, 80:160, :] > 0.8).sum((0, 1))
        assert Z0 <= int(np.argmax(central_csf)) < Z1


def test_axial_display_orientation(subjects):
    # Low slices hold the cerebellum, which is posterior: in the displayed image (anterior up) the
    # brain's centre of mass at z = 15 lies below the image centre; at the ventricles it is central.
    brain = subjects["tumour"].tissue["brain"]
    from datasets.synthetic_anatomy import geometry

    affine = geometry("brats").affine
    low = display_axial(brain[:, :, 15], affine)
    rows = np.nonzero(low)[0]
    assert rows.mean() > low.shape[0] / 2 + 10


def test_skipped_when_complete(brats_root):
    seg = subject_files(brats_root, "brats", 0)[LABEL]
    before = (seg.stat().st_mtime_ns, (brats_root / MARKER).stat().st_mtime_ns)
    started = time.perf_counter()
    ensure_synthetic_dataset(brats_root, BRATS, workers=2, progress=False)
    assert time.perf_counter() - started < 2.0
    assert (seg.stat().st_mtime_ns, (brats_root / MARKER).stat().st_mtime_ns) == before


def test_regenerated_when_config_differs_or_incomplete(tmp_path):
    first = SyntheticConfig(n_subjects=2, seed=0, layout="atlas")
    second = replace(first, n_subjects=1, seed=1)
    root = ensure_synthetic_dataset(tmp_path / "set", first, workers=1, progress=False)
    old_label = _load(subject_files(root, "atlas", 0)[LABEL])[0]
    ensure_synthetic_dataset(root, second, workers=1, progress=False)
    assert synthetic_dataset_hash(root) == second.config_hash() != first.config_hash()
    assert not subject_files(root, "atlas", 1)[LABEL].exists(), "stale subject of the old set kept"
    assert not np.array_equal(_load(subject_files(root, "atlas", 0)[LABEL])[0], old_label)
    # a half-written set (crash before the marker) is regenerated
    (root / MARKER).unlink()
    (root / IN_PROGRESS).write_text("{}")
    (root / "ATLAS_2" / "stray.partial.nii.gz").write_bytes(b"")
    ensure_synthetic_dataset(root, second, workers=1, progress=False)
    assert synthetic_dataset_hash(root) == second.config_hash()
    assert not (root / "ATLAS_2" / "stray.partial.nii.gz").exists() and not (root / IN_PROGRESS).exists()


def test_refuses_to_overwrite_foreign_data(tmp_path):
    (tmp_path / "BraTS2021_00000").mkdir()
    (tmp_path / "BraTS2021_00000" / "BraTS2021_00000_flair.nii.gz").write_bytes(b"real data")
    with pytest.raises(FileExistsError, match="not written by the synthetic generator"):
        ensure_synthetic_dataset(tmp_path, SyntheticConfig(n_subjects=1), workers=1, progress=False)
    assert (tmp_path / "BraTS2021_00000" / "BraTS2021_00000_flair.nii.gz").read_bytes() == b"real data"


@pytest.fixture(scope="module")
def atlas_root(tmp_path_factory) -> Path:
    config = SyntheticConfig(n_subjects=2, seed=0, layout="atlas")
    return ensure_synthetic_dataset(tmp_path_factory.mktemp("atlas"), config, workers=1, progress=False)


def test_atlas_layout(atlas_root):
    stem = "ATLAS_2/Training/R001/sub-r001s{0:03d}/ses-1/anat/sub-r001s{0:03d}_ses-1_space-MNI152NLin2009aSym"
    expected = {"dataset_description.json", "samples.png"}
    for k in (1, 2):
        expected |= {f"{stem.format(k)}_T1w.nii.gz", f"{stem.format(k)}_label-L_desc-T1lesion_mask.nii.gz"}
    assert _relative_files(atlas_root) == expected
    templates = load_templates()
    far_from_brain = ndi.distance_transform_edt(templates.brain == 0) > 25  # mm
    for i in range(2):
        files = subject_files(atlas_root, "atlas", i)
        t1, img = _load(files["t1"])
        mask, _ = _load(files[LABEL])
        assert t1.shape == mask.shape == (197, 233, 189)
        np.testing.assert_allclose(img.affine, templates.affine)
        assert set(np.unique(mask)) == {0, 1}
        outside = (templates.brain == 0) & (t1 > 0)
        assert outside.sum() > 1e5, "ATLAS T1 should keep a (crude) head around the brain"
        assert t1[far_from_brain].max() == 0, "nothing but a thin head around the brain"


def test_atlas_cohort_names():
    files = subject_files(Path("/r"), "atlas", 10)
    assert str(files["t1"]).startswith("/r/ATLAS_2/Training/R002/sub-r002s001/ses-1/anat/sub-r002s001_ses-1_")


@pytest.fixture(scope="module")
def isles_root(tmp_path_factory) -> Path:
    config = SyntheticConfig(n_subjects=1, seed=0, layout="isles")
    return ensure_synthetic_dataset(tmp_path_factory.mktemp("isles"), config, workers=1, progress=False)


def test_isles_layout(isles_root):
    names = [
        "VSD.Brain.XX.O.MR_Flair.10000",
        "VSD.Brain.XX.O.MR_T1.10001",
        "VSD.Brain.XX.O.MR_T2.10002",
        "VSD.Brain.XX.O.MR_DWI.10003",
        "VSD.Brain_3more.XX.O.OT.10004",
    ]
    expected = {"dataset_description.json", "samples.png"} | {f"1/{n}/{n}.nii" for n in names}
    assert _relative_files(isles_root) == expected
    files = subject_files(isles_root, "isles", 0)
    label, _ = _load(files[LABEL])
    assert label.shape == (230, 230, 154) and set(np.unique(label)) == {0, 1}
    flair, _ = _load(files["flair"])
    dwi, _ = _load(files["dwi"])
    assert flair.shape == dwi.shape == (230, 230, 154)
    assert (flair > 0).sum() == (dwi > 0).sum() and not (label > 0)[flair == 0].any()
    lesion = label > 0
    assert dwi[lesion].mean() > 1.3 * np.median(dwi[dwi > 0])  # DWI-bright stroke
    ids = {int(p.parent.name.rsplit(".", 1)[1]) for p in files.values()}
    assert len(ids) == 5


def test_lesion_sizes_and_shapes_over_a_moderate_set():
    """The default set's subjects, in order and masks only, until both a small (< 200 px) and a large
    (> 800 px) largest-lesion test slice at 128 x 128 have been seen (at least 8 subjects)."""
    from skimage.measure import label as components
    from skimage.measure import regionprops

    config = SyntheticConfig()
    largest, solidity = [], []
    for i in range(config.n_subjects):
        lesion = subject_labels(config, i) > 0
        largest.append(lesion[:, :, Z0:Z1].sum((0, 1)).max() / GRID_128)
        z = int(np.argmax(lesion.sum((0, 1))))
        solidity.append(max(regionprops(components(lesion[:, :, z])), key=lambda r: r.area).solidity)
        if i >= 7 and min(largest) < 200 and max(largest) > 800:
            break
    assert min(largest) < 200 and max(largest) > 800 and len(largest) <= 16, largest
    assert np.median(solidity) < 0.93, solidity  # irregular outlines, not discs or squares


def test_mass_effect_displaces_tissue_locally():
    families = subject_families(BRATS)
    index = families.index("tumour")
    pushed = subject_plan(BRATS, index)
    still = subject_plan(replace(BRATS, mass_effect=0.0), index)
    for a, b in zip(pushed.lesions, still.lesions):
        np.testing.assert_array_equal(a.centre, b.centre)
    from datasets.synthetic_anatomy import coarse_points

    pts = coarse_points((240, 240, 155))
    shift = np.sqrt(((pushed.cmap.source - still.cmap.source) ** 2).sum(0))
    far = np.ones(shift.shape, bool)
    for k, lesion in enumerate(pushed.lesions):
        distance = np.sqrt(((pts - lesion.centre.reshape(3, 1, 1, 1)) ** 2).sum(0))
        radius = float(np.mean(lesion.axes))
        if k == 0:  # the primary tumour pushes the tissue around it by millimetres
            assert shift[(distance > 0.5 * radius) & (distance < 1.2 * radius)].max() > 2.0
        far &= distance > 5 * radius
    assert far.any() and shift[far].max() < 0.05  # nothing moves far from every lesion


def test_config_accepts_lists_and_validates():
    from_yaml = SyntheticConfig(lesion_families=["stroke"], slice_range=[70, 90])  # type: ignore[arg-type]
    assert from_yaml == SyntheticConfig(lesion_families=("stroke",))
    assert from_yaml.config_hash() == SyntheticConfig(lesion_families=("stroke",)).config_hash()
    assert SyntheticConfig(seed=1).config_hash() != SyntheticConfig(seed=0).config_hash()
    assert SyntheticConfig(layout="atlas").families == ("stroke",)
    with pytest.raises(ValueError, match="supports only"):
        SyntheticConfig(layout="isles", lesion_families=("tumour",))
    with pytest.raises(ValueError, match="layout"):
        SyntheticConfig(layout="nifti")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="too short"):
        SyntheticConfig(slice_range=(70, 75))


def test_families_are_balanced():
    families = subject_families(SyntheticConfig(n_subjects=40))
    assert families.count("tumour") == families.count("stroke") == 20
    assert families != subject_families(SyntheticConfig(n_subjects=40, seed=1))


def test_an_interrupted_generation_keeps_its_subjects_and_resumes_byte_identically(brats_root, tmp_path, monkeypatch):
    real_writer, calls = synthetic._write_subject, []

    def interrupted_in_the_second(config, index, root, keep_sample):  # Ctrl-C while subject 1 is half-written
        calls.append(index)
        if len(calls) == 2:
            subject_files(root, config.layout, index)["flair"].parent.mkdir(parents=True)
            subject_files(root, config.layout, index)["flair"].write_bytes(b"half-written")
            raise KeyboardInterrupt
        real_writer(config, index, root, keep_sample)

    root = tmp_path / "set"
    monkeypatch.setattr(synthetic, "_write_subject", interrupted_in_the_second)
    with pytest.raises(KeyboardInterrupt):
        ensure_synthetic_dataset(root, BRATS, workers=1, progress=False)
    assert not (root / MARKER).exists() and (root / IN_PROGRESS).exists()
    first = {p: p.stat().st_mtime_ns for p in subject_files(root, "brats", 0).values()}

    calls.clear()
    monkeypatch.setattr(synthetic, "_write_subject", lambda *args: calls.append(args[1]) or real_writer(*args))
    ensure_synthetic_dataset(root, BRATS, workers=1, progress=False)
    assert calls == [1], "the rerun writes only the unfinished subject"
    assert {p: p.stat().st_mtime_ns for p in first} == first, "finished subjects are not rewritten"
    # byte for byte the set that two worker processes wrote in one go (the module's fixture)
    assert _relative_files(root) == _relative_files(brats_root)
    for name in sorted(_relative_files(brats_root) - {DESCRIPTION}):
        assert (root / name).read_bytes() == (brats_root / name).read_bytes(), name
    described = [json.loads((r / DESCRIPTION).read_text())["subjects"] for r in (root, brats_root)]
    assert described[0] == described[1]
    assert synthetic_dataset_hash(root) == BRATS.config_hash()


def _fake_interrupted_set(root: Path, config: SyntheticConfig, digest: str) -> None:
    """What an interrupted run for config hash ``digest`` leaves: subject 0 finished (volumes, record, figure
    slices), subject 1 half-written, a temporary; the contents are placeholders (no generator run)."""
    for path in subject_files(root, config.layout, 0).values():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"finished")
    synthetic._record_path(root, 0).parent.mkdir()
    synthetic._record_path(root, 0).write_text(json.dumps({"config_hash": digest, "summary": {"index": 0}}))
    synthetic._sample_path(root, 0).write_bytes(b"slices")
    half = subject_files(root, config.layout, 1)["flair"]
    half.parent.mkdir()
    half.write_bytes(b"half")
    (half.parent / "BraTS2021_00001_t1.partial.nii.gz").write_bytes(b"tmp")
    (root / IN_PROGRESS).write_text(json.dumps({"config_hash": digest}))


def test_resuming_keeps_the_finished_subjects_of_the_same_config_only(tmp_path, monkeypatch):
    config = SyntheticConfig(n_subjects=2, seed=5)
    assert 0 in synthetic._sample_indices(subject_families(config))  # subject 0's figure slices are needed

    def interrupted(config, index, root, keep_sample):
        raise KeyboardInterrupt

    monkeypatch.setattr(synthetic, "_write_subject", interrupted)
    same, other = tmp_path / "same", tmp_path / "other"
    _fake_interrupted_set(same, config, config.config_hash())
    _fake_interrupted_set(other, config, replace(config, seed=6).config_hash())
    kept = {*subject_files(same, "brats", 0).values(), synthetic._record_path(same, 0), synthetic._sample_path(same, 0)}
    for root in (same, other):
        with pytest.raises(KeyboardInterrupt):
            ensure_synthetic_dataset(root, config, workers=1, progress=False)
        assert json.loads((root / IN_PROGRESS).read_text()) == {"config_hash": config.config_hash()}
    assert {p for p in same.rglob("*") if p.is_file() and p.name not in (synthetic.LOCK, IN_PROGRESS)} == kept
    assert all(p.read_bytes() in (b"finished", b"slices") for p in kept if p.suffix != ".json")
    # a set of another config hash is wiped whole (its subject 0 is not this config's)
    assert sorted(p.name for p in other.rglob("*")) == sorted([synthetic.LOCK, IN_PROGRESS])
