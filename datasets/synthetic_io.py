"""On-disk layouts of the synthetic set (BraTS 2021, ATLAS v2.0, ISLES 2015 SISS) and its sample figure.

The file names here are the contract with the real-data loaders (``datasets/loader*.py``):

* ``brats``: ``<root>/BraTS2021_00000/BraTS2021_00000_{flair,t1,t1ce,t2,seg}.nii.gz``
* ``atlas``: ``<root>/ATLAS_2/Training/R001/sub-r001s001/ses-1/anat/
  sub-r001s001_ses-1_space-MNI152NLin2009aSym_{T1w,label-L_desc-T1lesion_mask}.nii.gz``
  (ten subjects per cohort R001, R002, ...)
* ``isles``: ``<root>/<n>/VSD.Brain.XX.O.MR_<Flair|T1|T2|DWI>.<id>/VSD.Brain.XX.O.MR_<...>.<id>.nii`` and
  ``<root>/<n>/VSD.Brain_3more.XX.O.OT.<id>/VSD.Brain_3more.XX.O.OT.<id>.nii`` (``n`` from 1, ``id``
  unique per volume: ``10000 + 5 (n - 1) + k``, k = 0..4 for Flair, T1, T2, DWI, OT)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np

MODALITIES = {"brats": ("flair", "t1", "t1ce", "t2"), "isles": ("flair", "t1", "t2", "dwi"), "atlas": ("t1",)}
LABEL = "label"
_ISLES_NAMES = {"flair": "MR_Flair", "t1": "MR_T1", "t2": "MR_T2", "dwi": "MR_DWI"}
ATLAS_PER_COHORT = 10


def subject_id(layout: str, index: int) -> str:
    if layout == "brats":
        return f"BraTS2021_{index:05d}"
    if layout == "atlas":
        return f"sub-r{index // ATLAS_PER_COHORT + 1:03d}s{index % ATLAS_PER_COHORT + 1:03d}"
    if layout == "isles":
        return str(index + 1)
    raise ValueError(f"unknown layout {layout!r}")


def subject_dir(root: Path, layout: str, index: int) -> Path:
    """The top folder of one subject (what is removed to remove the subject)."""
    sid = subject_id(layout, index)
    if layout == "atlas":
        return root / "ATLAS_2" / "Training" / f"R{index // ATLAS_PER_COHORT + 1:03d}" / sid
    return root / sid


def subject_files(root: Path, layout: str, index: int) -> dict[str, Path]:
    """Paths of every volume of a subject: its modalities and :data:`LABEL`."""
    sid = subject_id(layout, index)
    top = subject_dir(root, layout, index)
    if layout == "brats":
        files = {m: top / f"{sid}_{m}.nii.gz" for m in MODALITIES["brats"]}
        files[LABEL] = top / f"{sid}_seg.nii.gz"
        return files
    if layout == "atlas":
        stem = top / "ses-1" / "anat" / f"{sid}_ses-1_space-MNI152NLin2009aSym"
        return {"t1": Path(f"{stem}_T1w.nii.gz"), LABEL: Path(f"{stem}_label-L_desc-T1lesion_mask.nii.gz")}
    files = {}
    for k, m in enumerate((*MODALITIES["isles"], LABEL)):
        vid = 10000 + 5 * index + k
        name = f"VSD.Brain_3more.XX.O.OT.{vid}" if m == LABEL else f"VSD.Brain.XX.O.{_ISLES_NAMES[m]}.{vid}"
        files[m] = top / name / f"{name}.nii"
    return files


def write_volume(path: Path, data: np.ndarray, affine: np.ndarray) -> None:
    """Write one NIfTI volume (gzip level 1 for .nii.gz) with millimetre units and a scanner sform."""
    path.parent.mkdir(parents=True, exist_ok=True)
    img = nib.Nifti1Image(data, affine)
    img.header.set_xyzt_units("mm", "sec")
    img.set_sform(affine, code=1)
    img.set_qform(affine, code=1)
    tmp = path.with_name(path.name.replace(".nii", ".partial.nii"))
    nib.save(img, tmp)
    tmp.replace(path)


def display_axial(slice2d: np.ndarray, affine: np.ndarray) -> np.ndarray:
    """An axial ``[x, y]`` slice as a radiological image (anterior up, patient's right on the left)."""
    codes = nib.aff2axcodes(affine)
    out = slice2d
    if codes[0] == "R":
        out = out[::-1, :]
    if codes[1] == "A":
        out = out[:, ::-1]
    return out.T


def write_sample_figure(
    path: Path, samples: list[dict[str, Any]], modalities: tuple[str, ...], affine: np.ndarray, title: str
) -> None:
    """Rows of subjects x columns of contrasts at the subject's largest lesion slice, label contoured.

    ``samples``: dicts with ``id``, ``family``, ``z``, ``images`` (modality -> 2-D slice) and ``label``
    (2-D internal classes; the lesion outline is drawn in red, a tumour core in yellow).
    """
    from matplotlib.figure import Figure  # no pyplot: renders with Agg, leaves the user's backend alone

    rows, cols = max(1, len(samples)), len(modalities)
    fig = Figure(figsize=(2.6 * cols, 2.6 * rows), facecolor="black")
    axes = fig.subplots(rows, cols, squeeze=False)
    for r, sample in enumerate(samples):
        label = display_axial(sample["label"], affine)
        for c, m in enumerate(modalities):
            ax = axes[r, c]
            img = display_axial(sample["images"][m].astype(np.float32), affine)
            vmax = np.percentile(img[img > 0], 99.5) if np.any(img > 0) else 1.0
            ax.imshow(img, cmap="gray", vmin=0, vmax=vmax, interpolation="nearest")
            if label.any():
                ax.contour(label > 0, levels=[0.5], colors="red", linewidths=0.6)
                core = np.isin(label, (1, 4))
                if core.any():
                    ax.contour(core, levels=[0.5], colors="yellow", linewidths=0.5)
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_title(f"{sample['id']} {m} z={sample['z']}\n{sample['family']}", color="white", fontsize=7)
    for ax in axes[len(samples) :].ravel():
        ax.axis("off")
    fig.suptitle(title, color="white", fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110, facecolor="black")
