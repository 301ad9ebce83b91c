"""Tiny NIfTI datasets in the exact on-disk layouts of BraTS 2021, BraTS 2023+, ATLAS v2.0 and ISLES 2015 SISS.

Every volume is ``SHAPE`` = 48x48x24. Subject ``i`` has square lesions of known side on known slices
(:func:`lesion_slices`): areas 9, 36 and 16 voxels on z = 6+i, 9+i and 12+i, so its largest-lesion
slice is z = 9+i. BraTS and ISLES brains are a disk of radius 17.5 (soft edges after resizing) on a
zero background; the ATLAS head fills the whole volume (bright "skull" outside the template brain).
Headers carry each release's orientation: BraTS and ISLES voxel axes LPS (:data:`LPS_AFFINE`), ATLAS RAS
(:data:`ATLAS_AFFINE`); :func:`reoriented_copy` writes a user's reoriented copy of a volume.
"""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np

SHAPE = (48, 48, 24)
SLICE_RANGE = (4, 20)
BRATS_MODALITIES = ("flair", "t1", "t1ce", "t2")
ISLES_TAGS = {"flair": "Flair", "t1": "T1", "t2": "T2", "dwi": "DWI"}
LESION_CORNER = (20, 26)  # first voxel (x, y) of every square lesion
ATLAS_SPACE = "space-MNI152NLin2009aSym"
# the 48x48x24 fixture grid spans the MNI152NLin2009aSym 1 mm box (197x233x189 from (-98, -134, -72) mm)
# BraTS headers (and ISLES, converted from ITK): voxel x towards the patient's left, y towards posterior (LPS)
LPS_AFFINE = np.array([[-1.0, 0, 0, 0], [0, -1.0, 0, SHAPE[1] - 1.0], [0, 0, 1.0, 0], [0, 0, 0, 1]])
ATLAS_AFFINE = np.array([[197 / 48, 0, 0, -98.0], [0, 233 / 48, 0, -134.0], [0, 0, 189 / 24, -72.0], [0, 0, 0, 1]])


def lesion_slices(i: int) -> dict[int, int]:
    """z → side of the square lesion of subject ``i``; the largest (side 6) is on z = 9 + i."""
    return {6 + i: 3, 9 + i: 6, 12 + i: 4}


def write_nifti(path: Path, data: np.ndarray, affine: np.ndarray | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(np.asarray(data), np.eye(4) if affine is None else affine), str(path))
    return path


def disk_brain(shape: tuple[int, int, int] = SHAPE, radius: float = 17.5) -> np.ndarray:
    x, y = np.meshgrid(np.arange(shape[0]), np.arange(shape[1]), indexing="ij")
    disk = (x - 23.5) ** 2 + (y - 23.0) ** 2 <= radius**2
    return np.repeat(disk[:, :, None], shape[2], axis=2)


def lesion_mask(lesions: dict[int, int], shape: tuple[int, int, int] = SHAPE) -> np.ndarray:
    mask = np.zeros(shape, dtype=bool)
    x0, y0 = LESION_CORNER
    for z, side in lesions.items():
        mask[x0 : x0 + side, y0 : y0 + side, z] = True
    return mask


def _image(rng: np.random.Generator, inside: np.ndarray, lesion: np.ndarray, outside: float = 0.0) -> np.ndarray:
    base = 100.0 + 40.0 * rng.random(inside.shape)
    return np.where(inside, base + 80.0 * lesion, outside).astype(np.float32)


def _brats_subjects(n: int, seed: int) -> list[tuple[dict[str, np.ndarray], np.ndarray]]:
    """Per subject the four BraTS images (by suite modality name) and the BraTS 2021 seg (labels 1, 2, 4)."""
    rng = np.random.default_rng(seed)
    subjects = []
    for i in range(n):
        brain, lesion = disk_brain(), lesion_mask(lesion_slices(i))
        images = {modality: _image(rng, brain, lesion) for modality in BRATS_MODALITIES}
        seg = np.zeros(SHAPE, dtype=np.uint8)
        seg[lesion] = (1, 2, 4)[i % 3]
        seg[LESION_CORNER[0], LESION_CORNER[1], 9 + i] = 4  # a second label value inside the lesion
        subjects.append((images, seg))
    return subjects


def write_brats(root: Path, n: int = 6, seed: int = 0) -> list[str]:
    """``<root>/BraTS2021_0000i/BraTS2021_0000i_{flair,t1,t1ce,t2,seg}.nii.gz``; seg labels 1, 2, 4."""
    ids = []
    for i, (images, seg) in enumerate(_brats_subjects(n, seed)):
        sid = f"BraTS2021_{i:05d}"
        for modality, image in images.items():
            write_nifti(root / sid / f"{sid}_{modality}.nii.gz", image, LPS_AFFINE)
        write_nifti(root / sid / f"{sid}_seg.nii.gz", seg, LPS_AFFINE)
        ids.append(sid)
    return ids


BRATS2023_SUFFIX = {"flair": "t2f", "t1": "t1n", "t1ce": "t1c", "t2": "t2w", "seg": "seg"}


def brats2023_file(root: Path, i: int, suffix: str, prefix: str = "BraTS-GLI") -> Path:
    """``<root>/BraTS-GLI-0000i-000/BraTS-GLI-0000i-000-<suffix>.nii.gz`` (suffix t1n, t1c, t2w, t2f or seg)."""
    sid = f"{prefix}-{i:05d}-000"
    return root / sid / f"{sid}-{suffix}.nii.gz"


def write_brats2023(root: Path, n: int = 6, seed: int = 0, prefix: str = "BraTS-GLI") -> list[str]:
    """The BraTS 2023/2024 naming, ``<root>/BraTS-GLI-0000i-000/BraTS-GLI-0000i-000-{t1n,t1c,t2w,t2f,seg}.nii.gz``
    (``prefix`` BraTS-MET, BraTS-MEN, ... for the other collections), with the same arrays as
    :func:`write_brats` for the same ``n`` and ``seed``; seg labels 1, 2, 3 (2021's 4 is 3)."""
    ids = []
    for i, (images, seg) in enumerate(_brats_subjects(n, seed)):
        for modality, image in images.items():
            write_nifti(brats2023_file(root, i, BRATS2023_SUFFIX[modality], prefix), image, LPS_AFFINE)
        write_nifti(brats2023_file(root, i, "seg", prefix), np.where(seg == 4, 3, seg).astype(np.uint8), LPS_AFFINE)
        ids.append(brats2023_file(root, i, "seg", prefix).parent.name)
    return ids


def brats_file(root: Path, i: int, suffix: str) -> Path:
    sid = f"BraTS2021_{i:05d}"
    return root / sid / f"{sid}_{suffix}.nii.gz"


def atlas_dir(root: Path, i: int) -> Path:
    return root / "ATLAS_2" / "Training" / "R001" / f"sub-r001s{i + 1:03d}" / "ses-1" / "anat"


def atlas_file(root: Path, i: int, suffix: str) -> Path:
    return atlas_dir(root, i) / f"sub-r001s{i + 1:03d}_ses-1_{ATLAS_SPACE}_{suffix}.nii.gz"


def write_atlas(root: Path, n: int = 4, seed: int = 0) -> list[str]:
    """The release's nesting: ``ATLAS_2/Training/R001/sub-r001s00X/ses-1/anat/`` with the T1w image and
    ``label-L_desc-T1lesion_mask``; not skull-stripped (intensity 400 + noise outside the brain)."""
    rng = np.random.default_rng(seed)
    ids = []
    everywhere = np.ones(SHAPE, dtype=bool)
    for i in range(n):
        lesion = lesion_mask(lesion_slices(i))
        t1 = _image(rng, everywhere, lesion) + 300.0 * (disk_brain(radius=14) == 0)
        write_nifti(atlas_file(root, i, "T1w"), t1, ATLAS_AFFINE)
        write_nifti(atlas_file(root, i, "label-L_desc-T1lesion_mask"), lesion.astype(np.uint8), ATLAS_AFFINE)
        ids.append(f"sub-r001s{i + 1:03d}")
    return ids


def isles_file(root: Path, i: int, tag: str) -> Path:
    """``<root>/<i+1>/VSD.Brain.XX.O.MR_<tag>.<id>/VSD.Brain.XX.O.MR_<tag>.<id>.nii``; tag ``OT`` = label."""
    tags = [*ISLES_TAGS.values(), "OT"]
    file_id = 70613 + 6 * i + tags.index(tag)
    name = f"VSD.Brain_3more.XX.O.OT.{file_id}" if tag == "OT" else f"VSD.Brain.XX.O.MR_{tag}.{file_id}"
    return root / str(i + 1) / name / f"{name}.nii"


def write_isles(root: Path, n: int = 4, seed: int = 0) -> list[str]:
    """ISLES 2015 SISS: uncompressed ``.nii`` per modality folder, label ``VSD.Brain_3more.XX.O.OT``."""
    rng = np.random.default_rng(seed)
    for i in range(n):
        brain, lesion = disk_brain(), lesion_mask(lesion_slices(i))
        for tag in ISLES_TAGS.values():
            write_nifti(isles_file(root, i, tag), _image(rng, brain, lesion), LPS_AFFINE)
        write_nifti(isles_file(root, i, "OT"), lesion.astype(np.uint8), LPS_AFFINE)
    return [str(i + 1) for i in range(n)]


def reoriented_copy(source: Path, target: Path, flip_xy: bool = False, swap_xy: bool = False) -> Path:
    """``source`` written to ``target`` as a reorienting tool would: the voxel array with x and y reversed
    (``flip_xy``: LPS -> RAS) and/or x and y swapped (``swap_xy``: LPS -> PLS), and the affine changed so that
    every voxel keeps its world position (``affine @ M`` with ``M`` mapping new voxel indices to old ones)."""
    image = nib.load(source)
    data = np.asanyarray(image.dataobj)
    to_old = np.eye(4)
    if flip_xy:
        data = data[::-1, ::-1]
        nx, ny = data.shape[:2]
        to_old = to_old @ np.array([[-1.0, 0, 0, nx - 1], [0, -1.0, 0, ny - 1], [0, 0, 1, 0], [0, 0, 0, 1]])
    if swap_xy:
        data = data.transpose(1, 0, 2)
        to_old = to_old @ np.array([[0, 1.0, 0, 0], [1.0, 0, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]])
    return write_nifti(target, np.ascontiguousarray(data), image.affine @ to_old)
