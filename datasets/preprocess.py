"""Pre-processing of one subject's volumes into 2-D axial slices (protocol.md §2).

Pure array functions, no file I/O: intensity normalisation, the template skull-strip used for ATLAS,
slice selection, and area resizing of images, brain masks and lesion masks. The loader
(:mod:`datasets.loader`) reads and checks the volumes and calls these in order.

Conventions: volumes are raw ``[X, Y, Z]`` arrays as stored in the NIfTI file; an axial slice is
``volume[:, :, z]`` (no flips or rotations), so a slice's rows are the file's first voxel axis.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import TYPE_CHECKING, Literal

import numpy as np
import torch
import torch.nn.functional as F

from datasets.errors import DatasetError

if TYPE_CHECKING:
    from nibabel import Nifti1Image

BACKGROUND = -3.0
"""Value of every non-brain pixel after normalisation, for every dataset.

Every layout *sets* it outside the subject's brain mask, for every modality: for BraTS it equals ``6x/U - 3``
at x = 0, ATLAS and ISLES are z-scored inside the brain, so that every method sees one background value on
every dataset
(baselines.md assumes "background -3"). Very dark brain voxels (CSF, chronic stroke cavities on T1)
can have z < -3, i.e. lie below the background value; that is harmless because every anomaly map and
metric is restricted to the brain mask.
"""

MNI152_BRAIN_MASK = "nilearn.datasets.load_mni152_brain_mask(resolution=1)"
"""The template brain mask that skull-strips ATLAS v2.0 (MNI152NLin2009aSym space).

nilearn ships the ICBM 2009a *nonlinear symmetric* MNI152 T1 template
(``mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz``, 1 mm, grid 197x233x189, origin
(-98, -134, -72) mm, the ATLAS grid) and thresholds it at 0.2 to a whole-brain mask (1.88 l, no holes:
ventricles included). nilearn's docstring calls the template "asymmetrical"; the packaged file is the
symmetric release, the space ATLAS is registered to. Offline; no download.
"""


def normalise_p90(volume: np.ndarray, brain: np.ndarray, source: str = "volume") -> np.ndarray:
    """BraTS normalisation of one modality volume: ``x' = 6 x / U - 3`` inside ``brain``, :data:`BACKGROUND`
    outside.

    U is the 90th percentile (numpy's linear interpolation) of the volume's voxels in the subject's brain
    mask (the first modality > 0), so the brain's 90th percentile becomes +3. No clipping: bright lesions
    exceed +3. Setting the background from the mask, not from ``6 * 0 / U - 3``, gives every modality the
    same -3 even where its background is not 0 (e.g. -1024); on data with background 0 in every modality
    (the BraTS releases, the synthetic set) both are the same numbers.
    """
    values = volume[brain]
    if values.size == 0:
        raise DatasetError(f"{source}: the brain mask is empty; expected brain voxels to normalise")
    u = float(np.percentile(values, 90))
    if not u > 0:
        raise DatasetError(
            f"{source}: 90th percentile {u:g} inside the brain mask; expected positive brain intensities "
            "(a skull-stripped volume)"
        )
    out = (volume * np.float32(6.0 / u) - np.float32(3.0)).astype(np.float32, copy=False)
    out[~brain] = BACKGROUND
    return out


def normalise_zscore(volume: np.ndarray, brain: np.ndarray, source: str = "volume") -> np.ndarray:
    """ATLAS / ISLES normalisation: z-score inside ``brain`` (mean 0, std 1 over its voxels), every
    voxel outside set to :data:`BACKGROUND`."""
    values = volume[brain].astype(np.float64)
    if values.size == 0:
        raise DatasetError(f"{source}: the brain mask is empty; expected brain voxels to z-score")
    sd = float(values.std())
    if not sd > 0:
        raise DatasetError(f"{source}: constant intensity inside the brain mask; expected varying intensities")
    out = np.full(volume.shape, BACKGROUND, dtype=np.float32)
    out[brain] = (values - values.mean()) / sd
    return out


@functools.lru_cache(maxsize=1)
def _mni152_mask_image() -> Nifti1Image:
    from nilearn.datasets import load_mni152_brain_mask  # imported lazily: ~2 s, ATLAS only

    return load_mni152_brain_mask(resolution=1)


@functools.lru_cache(maxsize=8)
def _mni152_mask_on(shape: tuple[int, ...], affine_bytes: bytes) -> np.ndarray:
    import nibabel as nib

    template = _mni152_mask_image()
    affine = np.frombuffer(affine_bytes, dtype=np.float64).reshape(4, 4)
    if template.shape == shape and np.allclose(template.affine, affine, atol=1e-3):
        mask = np.asanyarray(template.dataobj) > 0
    else:
        from nilearn.image import resample_to_img

        target = nib.Nifti1Image(np.zeros(shape, dtype=np.uint8), affine)
        mask = np.asanyarray(resample_to_img(template, target, interpolation="nearest").dataobj) > 0
    mask.flags.writeable = False
    return mask


def mni152_brain_mask(shape: Sequence[int], affine: np.ndarray) -> np.ndarray:
    """The :data:`MNI152_BRAIN_MASK` on a volume's voxel grid, as a read-only bool array.

    Used as is when the volume has the template's grid (shape and affine); otherwise resampled onto the
    volume's grid with nearest-neighbour interpolation (``nilearn.image.resample_to_img``). Cached per
    grid, so a dataset on one grid resamples once.
    """
    affine = np.asarray(affine, dtype=np.float64).round(6)
    return _mni152_mask_on(tuple(int(s) for s in shape), affine.tobytes())


def select_slices(
    lesion: np.ndarray,
    brain: np.ndarray,
    slice_range: tuple[int, int],
    role: Literal["healthy", "lesion"],
    test_slices: Literal["largest", "all"] = "largest",
    step: int = 1,
) -> list[int]:
    """Axial indices z in ``[start, stop)`` of the raw volume that a split keeps.

    ``healthy`` (train, val): every slice without a lesion voxel and with at least one brain voxel.
    ``lesion`` (test): ``largest`` = the one slice of largest lesion area (voxel count at raw
    resolution; on a tie the lowest z), ``all`` = every slice with a lesion voxel; ``[]`` when the
    subject has no lesion voxel in the range. ``step`` keeps every step-th of those slices, the first one
    included (so a subject with any slice keeps at least one).
    """
    start, stop = slice_range
    area = lesion[:, :, start:stop].sum(axis=(0, 1))
    keep: np.ndarray | list[int]
    if role == "healthy":
        keep = np.flatnonzero((area == 0) & brain[:, :, start:stop].any(axis=(0, 1)))
    elif test_slices == "all":
        keep = np.flatnonzero(area > 0)
    else:
        keep = [int(np.argmax(area))] if area.max() > 0 else []
    return [start + int(i) for i in keep[::step]]


def slab_slices(
    brain: np.ndarray, slice_range: tuple[int, int], step: int = 1, include: Sequence[int] = ()
) -> list[int]:
    """Axial indices z of a test subject's *slab*: every ``step``-th slice of ``[start, stop)`` with a brain
    voxel, lesion or not, plus the slices in ``include`` (the subject's paper-protocol view, so that it is a
    subset of the slab and is predicted once).

    The step grid is anchored on the first ``include`` slice (on ``start`` without one), so a view taken with
    the same step lies on the grid and adds no slice; a view that does not (several lesions whose every
    ``step``-th slices interleave) adds its slices, and the slab then has irregular spacing there.
    """
    start, stop = slice_range
    has_brain = brain[:, :, start:stop].any(axis=(0, 1))
    anchor = include[0] if len(include) else start
    grid = {start + int(i) for i in np.flatnonzero(has_brain) if (start + int(i) - anchor) % step == 0}
    return sorted(grid | {int(z) for z in include})


def resize_area(x: torch.Tensor, size: int, pad_value: float) -> torch.Tensor:
    """Resize ``[N, C, H, W]`` to ``[N, C, size, size]`` with area averaging.

    ``torch.nn.functional.interpolate(mode="area")``, what MONAI's ``Resized`` does by default
    (adaptive average pooling: for an integer factor, the mean of each factor x factor block).
    A non-square slice (ATLAS: 197x233) is first padded symmetrically to a square with ``pad_value``
    so that pixels stay square instead of the anatomy being stretched.
    """
    h, w = x.shape[-2:]
    if h != w:
        side = max(h, w)
        top, left = (side - h) // 2, (side - w) // 2
        x = F.pad(x, (left, side - w - left, top, side - h - top), value=pad_value)
    if x.shape[-1] == size:
        return x
    return F.interpolate(x, size=(size, size), mode="area")


def slices_to_tensors(
    images: Sequence[np.ndarray],
    brain: np.ndarray,
    lesion: np.ndarray,
    z: Sequence[int],
    image_size: int,
    binarize_brain: bool,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The slices ``z`` of one subject, resized: images ``[k, C, S, S]`` float32 (normalised volumes
    in channel order), brain ``[k, S, S]`` float32 (soft, or re-binarised > 0.5), lesion labels
    ``[k, S, S]`` bool (binarised > 0 after resizing)."""
    zi = np.asarray(z, dtype=np.int64)
    stack = np.stack([v[:, :, zi] for v in images])  # [C, X, Y, k]
    pixels = torch.from_numpy(np.ascontiguousarray(stack.transpose(3, 0, 1, 2), dtype=np.float32))
    masks = np.stack([brain[:, :, zi], lesion[:, :, zi]]).astype(np.float32)  # [2, X, Y, k]
    masks_t = resize_area(torch.from_numpy(np.ascontiguousarray(masks.transpose(3, 0, 1, 2))), image_size, 0.0)
    soft_brain = masks_t[:, 0]
    brain_out = (soft_brain > 0.5).float() if binarize_brain else soft_brain.contiguous()
    return resize_area(pixels, image_size, BACKGROUND).contiguous(), brain_out, masks_t[:, 1] > 0
