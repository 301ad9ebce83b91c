"""Voxel-axis orientation of a volume against the one its layout's release uses (protocol.md §2).

The loader takes axial slices ``volume[:, :, z]`` of the raw array, so a copy of a dataset whose voxel axes
were reordered or flipped (e.g. reoriented to RAS by FSL or ANTs tools) would silently yield other slices.
Orientation is named by nibabel's axis codes (``nibabel.aff2axcodes``): the world direction each voxel axis
increases towards, e.g. ``LPS`` for BraTS as released. A volume in other codes is either reoriented to the
layout's codes (flips and axis permutations only, no resampling) or refused, as ``dataset.orientation`` says.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import get_args

import nibabel as nib
import numpy as np
from nibabel import orientations

from datasets.config import OrientationMode
from datasets.errors import DatasetError

log = logging.getLogger(__name__)

ORIENTATION_MODES: tuple[OrientationMode, ...] = get_args(OrientationMode)

_announced: set[str] = set()  # datasets whose first reoriented volume has been logged
_announced_lock = threading.Lock()  # subjects are read in threads


def axis_codes(affine: np.ndarray, path: Path) -> str:
    """The volume's orientation as three axis codes, e.g. ``"LPS"``; a clear error for a degenerate affine."""
    codes = nib.aff2axcodes(affine)
    if None in codes:
        raise DatasetError(
            f"{path}: affine {np.asarray(affine).round(3).tolist()} has no orientation (a zero or degenerate axis); "
            "expected a NIfTI header with a valid sform or qform"
        )
    return "".join(str(c) for c in codes)


def to_orientation(
    data: np.ndarray,
    affine: np.ndarray,
    path: Path,
    *,
    expected: str,
    release: str,
    mode: OrientationMode,
    dataset: str,
) -> tuple[np.ndarray, np.ndarray]:
    """``data`` and its affine with voxel axes in the ``expected`` codes (those of ``release``); unchanged (the
    same arrays) when they already are. Otherwise reoriented (``mode="reorient"``, logged once per ``dataset``,
    a name that also tells where it lives) or refused with a :class:`DatasetError` naming the file and both
    orientations (``mode="error"``)."""
    codes = axis_codes(affine, path)
    if codes == expected:
        return data, affine
    if mode == "error":
        raise DatasetError(
            f"{path}: orientation {codes} (nibabel.aff2axcodes); expected {expected} as {release} is "
            "released; set dataset.orientation=reorient to reorient it on loading, or reorient the file"
        )
    transform = orientations.ornt_transform(orientations.axcodes2ornt(codes), orientations.axcodes2ornt(expected))
    moved = np.ascontiguousarray(orientations.apply_orientation(data, transform))
    moved_affine = affine @ orientations.inv_ornt_aff(transform, data.shape)
    with _announced_lock:
        first = dataset not in _announced
        _announced.add(dataset)
    if first:
        log.info(
            "%s: %s is in orientation %s, reoriented to the release's %s (dataset.orientation=reorient); other "
            "volumes not in %s are reoriented too, without a message each (dataset.orientation=error refuses them)",
            dataset,
            path,
            codes,
            expected,
            expected,
        )
    return moved, moved_affine
