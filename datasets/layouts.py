"""On-disk layouts of the real datasets (protocol.md §1): where each subject's files are, which
modalities and label values exist, and how a subject's brain mask and intensities are obtained.

Files are found by pattern, case-insensitively, as ``.nii`` or ``.nii.gz``; a missing or ambiguous
file is a :class:`~datasets.errors.DatasetError` that names the file and the expected pattern.
Subject ids are the names users write in split files: ``BraTS2021_00000`` (BraTS 2021),
``BraTS-GLI-00000-000`` (BraTS 2023+), ``sub-r001s001``
(ATLAS), ``1`` .. ``28`` (ISLES). They are ordered by :func:`natural_key` (``2`` before ``10``).
"""

from __future__ import annotations

import os
import re
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np

from datasets.errors import DatasetError
from datasets.preprocess import mni152_brain_mask, normalise_p90, normalise_zscore

NII = r"\.nii(?:\.gz)?"


def natural_key(name: str) -> list[int | str]:
    """Sort key that orders digit runs numerically: ``2`` < ``10``, ``sub-r2`` < ``sub-r10``."""
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", name)]


@dataclass(frozen=True)
class SubjectFiles:
    """The files of one subject: one image per requested modality (config order) and the label."""

    subject: str
    images: tuple[Path, ...]
    label: Path

    @property
    def paths(self) -> tuple[Path, ...]:
        return (*self.images, self.label)


class Layout(ABC):
    """One dataset's layout and its layout-specific pre-processing (brain mask, normalisation)."""

    key: ClassVar[str]  # DatasetConfig.layout
    title: ClassVar[str]  # for messages
    modalities: ClassVar[tuple[str, ...]]  # known modality names, lower case
    label_values: ClassVar[frozenset[int]]  # every value a label volume may hold
    subject_pattern: ClassVar[str]  # how a subject looks on disk, for messages
    brain_rule: ClassVar[str] = "first modality > 0"  # how the brain mask is made, for messages
    orientation: ClassVar[str]  # nibabel axis codes of the release's voxel axes (datasets/orientation.py)

    def check_modalities(self, modalities: Sequence[str]) -> None:
        if not modalities:
            raise DatasetError(f"{self.title}: no modality requested; expected some of {list(self.modalities)}")
        unknown = [m for m in modalities if m not in self.modalities]
        if unknown:
            raise DatasetError(
                f"{self.title}: unknown modality {unknown[0]!r}; expected one of {list(self.modalities)} (lower case)"
            )
        if len(set(modalities)) != len(modalities):
            raise DatasetError(f"{self.title}: modality listed twice in {list(modalities)}")

    def find_subjects(self, root: Path) -> dict[str, Path]:
        """Subject id → the subject's folder, for every subject under ``root``."""
        if not root.is_dir():
            what = "is not a folder" if root.exists() else "does not exist"
            raise DatasetError(
                f"dataset root {root} {what}; expected the {self.title} folder with {self.subject_pattern}"
            )
        subjects = self._find_subjects(root)
        if not subjects:
            seen = sorted(p.name for p in root.iterdir())[:5]
            raise DatasetError(
                f"no {self.title} subject found under {root}: expected {self.subject_pattern} "
                f"(found {seen if seen else 'an empty folder'})"
            )
        _check_unique_ids(subjects)
        return subjects

    @abstractmethod
    def _find_subjects(self, root: Path) -> dict[str, Path]: ...

    @abstractmethod
    def subject_files(self, subject: str, folder: Path, modalities: Sequence[str]) -> SubjectFiles: ...

    def brain_mask(self, first_image: np.ndarray, affine: np.ndarray) -> np.ndarray:
        """Brain mask of a subject at raw resolution: the first modality > 0 before normalisation."""
        return first_image > 0

    @abstractmethod
    def normalise(self, volume: np.ndarray, brain: np.ndarray, source: str) -> np.ndarray: ...


def _check_unique_ids(subjects: dict[str, Path]) -> None:
    """Stop when two subject folders differ only in letter case (e.g. a copy made on a case-insensitive file
    system): they would count as two subjects and could land in train and test at once."""
    first: dict[str, str] = {}
    for subject in sorted(subjects):
        key = subject.casefold()
        if key in first:
            raise DatasetError(
                f"subject {subject!r} appears twice (ids differ only in letter case): {subjects[first[key]]} and "
                f"{subjects[subject]}; expected one folder per subject (remove the copy)"
            )
        first[key] = subject


def _find_file(candidates: Sequence[Path], pattern: str, what: str, expected: Path) -> Path:
    """The one file among ``candidates`` whose name fully matches ``pattern`` (case-insensitive)."""
    regex = re.compile(pattern, re.IGNORECASE)
    found = sorted(p for p in candidates if regex.fullmatch(p.name))
    if not found:
        raise DatasetError(f"missing {what}: expected {expected} (.nii or .nii.gz, case-insensitive)")
    if len(found) > 1:
        raise DatasetError(f"{what}: several files match {expected}: {[str(p) for p in found]}; expected one")
    return found[0]


def _files_in(folder: Path) -> list[Path]:
    return [p for p in folder.iterdir() if p.is_file()]


class BratsLayout(Layout):
    """BraTS 2021: ``<root>/BraTS2021_XXXXX/BraTS2021_XXXXX_{flair,t1,t1ce,t2,seg}.nii.gz``.

    Skull-stripped; brain mask = first modality > 0; per volume and modality ``6x/U - 3`` with U over that
    mask, background -3 (:func:`~datasets.preprocess.normalise_p90`). Labels {0, 1, 2, 4}, merged to
    lesion = seg > 0. Voxel axes LPS, as released (an ``[[-1, 0, 0], [0, -1, 0], [0, 0, 1]]`` affine).
    Later releases of the BraTS family differ only in naming and label values: subclasses set
    ``_subject_dir``, ``_separator``, ``_file_suffix`` and ``label_values``.
    """

    key = "brats"
    title = "BraTS 2021"
    modalities = ("flair", "t1", "t1ce", "t2")
    label_values = frozenset({0, 1, 2, 4})
    subject_pattern = "subject folders <root>/BraTS2021_XXXXX/"
    orientation = "LPS"
    _subject_dir = re.compile(r"BraTS2021_\d+", re.IGNORECASE)
    _separator: ClassVar[str] = "_"  # between the subject id and the file suffix
    _file_suffix: ClassVar[dict[str, str]] = {"flair": "flair", "t1": "t1", "t1ce": "t1ce", "t2": "t2", "seg": "seg"}

    def _find_subjects(self, root: Path) -> dict[str, Path]:
        return {p.name: p for p in root.iterdir() if p.is_dir() and self._subject_dir.fullmatch(p.name)}

    def subject_files(self, subject: str, folder: Path, modalities: Sequence[str]) -> SubjectFiles:
        files = _files_in(folder)

        def find(name: str, what: str) -> Path:
            stem = f"{subject}{self._separator}{self._file_suffix[name]}"
            return _find_file(files, rf"{re.escape(stem)}{NII}", what, folder / f"{stem}.nii.gz")

        images = tuple(find(m, f"{m} image of {subject}") for m in modalities)
        return SubjectFiles(subject, images, find("seg", f"label (seg) of {subject}"))

    def normalise(self, volume: np.ndarray, brain: np.ndarray, source: str) -> np.ndarray:
        return normalise_p90(volume, brain, source)


class Brats2023Layout(BratsLayout):
    """BraTS 2023/2024 (GLI, MET, MEN, PED, SSA):
    ``<root>/BraTS-GLI-XXXXX-XXX/BraTS-GLI-XXXXX-XXX-{t1n,t1c,t2w,t2f,seg}.nii.gz``.

    The suite's flair / t1 / t1ce / t2 are the files ``t2f`` / ``t1n`` / ``t1c`` / ``t2w``. Pre-processing as
    BraTS 2021; labels {0, 1, 2, 3} (2021: {0, 1, 2, 4}), merged to lesion = seg > 0.
    """

    key = "brats2023"
    title = "BraTS 2023"
    label_values = frozenset({0, 1, 2, 3})
    subject_pattern = "subject folders <root>/BraTS-GLI-XXXXX-XXX/ (or BraTS-MET-, -MEN-, -PED-, -SSA-)"
    _subject_dir = re.compile(r"BraTS-[A-Z]+(?:-[A-Z]+)?-\d+-\d+", re.IGNORECASE)
    _separator = "-"
    _file_suffix: ClassVar[dict[str, str]] = {"flair": "t2f", "t1": "t1n", "t1ce": "t1c", "t2": "t2w", "seg": "seg"}


class AtlasLayout(Layout):
    """ATLAS v2.0: ``<root>/.../sub-XXX/ses-1/anat/sub-XXX_ses-1_space-MNI152NLin2009aSym_T1w.nii.gz``
    and ``..._label-L_desc-T1lesion_mask.nii.gz``, found anywhere below the root (the release nests
    them as ``ATLAS_2/Training/R001/sub-r001s001/ses-1/anat/``).

    Not skull-stripped: the brain mask is the MNI152 2009a symmetric template brain mask
    (:data:`~datasets.preprocess.MNI152_BRAIN_MASK`, resampled to the volume's grid if that differs);
    T1 is z-scored inside it and everything outside set to -3. Labels {0, 1}. Voxel axes RAS, the template's.
    ATLAS_2/Testing has no public masks: point the root at ``ATLAS_2/Training``.
    """

    key = "atlas"
    title = "ATLAS v2.0"
    modalities = ("t1",)
    label_values = frozenset({0, 1})
    subject_pattern = ".../sub-XXX/ses-1/anat/sub-XXX_ses-1_space-MNI152NLin2009aSym_T1w.nii.gz files"
    brain_rule = "MNI152 template brain mask on this volume's grid: is it in MNI152NLin2009aSym space?"
    orientation = "RAS"
    _space = "space-MNI152NLin2009aSym"
    _t1w = re.compile(rf"(sub-[A-Za-z0-9]+)_(ses-[A-Za-z0-9]+)_{_space}_T1w{NII}", re.IGNORECASE)

    def _find_subjects(self, root: Path) -> dict[str, Path]:
        subjects: dict[str, Path] = {}
        for folder, dirs, names in os.walk(root):
            dirs[:] = [d for d in dirs if not d.startswith(".")]  # caches, .git
            for name in names:
                match = self._t1w.fullmatch(name)
                if not match:
                    continue
                subject = match.group(1)
                if subject in subjects:
                    raise DatasetError(
                        f"ATLAS subject {subject} found twice: in {subjects[subject]} and {folder}; "
                        "expected one T1w image per subject (one session) under the root"
                    )
                subjects[subject] = Path(folder)
        return subjects

    def subject_files(self, subject: str, folder: Path, modalities: Sequence[str]) -> SubjectFiles:
        files = _files_in(folder)
        prefix = rf"{re.escape(subject)}_ses-[A-Za-z0-9]+_{self._space}"
        t1 = _find_file(
            files, rf"{prefix}_T1w{NII}", f"t1 image of {subject}", folder / f"{subject}_ses-1_{self._space}_T1w.nii.gz"
        )
        session = t1.name.split("_")[1]
        label_name = f"{subject}_{session}_{self._space}_label-L_desc-T1lesion_mask"
        try:
            label = _find_file(
                files, rf"{re.escape(label_name)}{NII}", f"lesion mask of {subject}", folder / f"{label_name}.nii.gz"
            )
        except DatasetError as error:
            hint = "ATLAS_2/Testing has no public masks: point the root at ATLAS_2/Training"
            raise DatasetError(f"{error} ({hint})") from None
        return SubjectFiles(subject, (t1,), label)

    def brain_mask(self, first_image: np.ndarray, affine: np.ndarray) -> np.ndarray:
        """The template brain mask (:data:`~datasets.preprocess.MNI152_BRAIN_MASK`), not T1 > 0."""
        return mni152_brain_mask(first_image.shape, affine)

    def normalise(self, volume: np.ndarray, brain: np.ndarray, source: str) -> np.ndarray:
        return normalise_zscore(volume, brain, source)


class IslesLayout(Layout):
    """ISLES 2015 SISS: ``<root>/<n>/VSD.Brain.XX.O.MR_Flair.<id>/VSD.Brain.XX.O.MR_Flair.<id>.nii``
    (also ``MR_T1``, ``MR_T2``, ``MR_DWI``); the label is the volume whose name contains ``.OT.``
    (``VSD.Brain_3more.XX.O.OT.<id>/...``). Files are searched anywhere below ``<root>/<n>/``.

    Skull-stripped; brain mask = first modality > 0; every modality z-scored inside that shared mask,
    background -3. Labels {0, 1}. Voxel axes LPS, assumed: SISS was converted from ITK
    MetaImage, whose identity direction is LPS (the synthetic ISLES layout writes the same).
    """

    key = "isles"
    title = "ISLES 2015 SISS"
    modalities = ("flair", "t1", "t2", "dwi")
    label_values = frozenset({0, 1})
    subject_pattern = "numbered subject folders <root>/<n>/ holding VSD.Brain.XX.O.MR_<modality>.<id>.nii"
    orientation = "LPS"
    _file_tag = {"flair": "Flair", "t1": "T1", "t2": "T2", "dwi": "DWI"}

    def _find_subjects(self, root: Path) -> dict[str, Path]:
        return {p.name: p for p in root.iterdir() if p.is_dir() and p.name.isdigit()}

    def subject_files(self, subject: str, folder: Path, modalities: Sequence[str]) -> SubjectFiles:
        files = [p for p in folder.rglob("*") if p.is_file()]

        def find(tag: str, what: str, example: str) -> Path:
            return _find_file(files, rf".*\.{tag}\.\d+{NII}", what, folder / example / f"{example}.nii")

        images = tuple(
            find(
                f"MR_{self._file_tag[m]}",
                f"{m} image of ISLES subject {subject}",
                f"VSD.Brain.XX.O.MR_{self._file_tag[m]}.<id>",
            )
            for m in modalities
        )
        label = find("OT", f"label (.OT.) of ISLES subject {subject}", "VSD.Brain_3more.XX.O.OT.<id>")
        return SubjectFiles(subject, images, label)

    def normalise(self, volume: np.ndarray, brain: np.ndarray, source: str) -> np.ndarray:
        return normalise_zscore(volume, brain, source)


LAYOUTS: dict[str, Layout] = {
    layout.key: layout for layout in (BratsLayout(), Brats2023Layout(), AtlasLayout(), IslesLayout())
}

# label schemes of lesion data sets: values, what they look like, what to do (for label-value errors)
LABEL_SCHEMES: tuple[tuple[frozenset[int], str], ...] = (
    (BratsLayout.label_values, "BraTS 2018-2021 scheme? use dataset=brats"),
    (Brats2023Layout.label_values, "BraTS 2023 scheme? use dataset=brats2023"),
    (frozenset({0, 1, 2, 3, 4}), "BraTS 2015-2017 scheme? (not a supported release)"),
)


def label_scheme_hint(present: set[int] | frozenset[int], layout: Layout) -> str:
    """What release a label volume holding ``present`` looks like, e.g. ``values {1,2,3}: BraTS 2023 scheme?
    use dataset=brats2023``; empty when no known scheme other than ``layout``'s holds every value, or when
    two fit equally well."""
    fits = [(values, hint) for values, hint in LABEL_SCHEMES if present <= values and values != layout.label_values]
    if not fits:
        return ""
    smallest = min(len(values) for values, _ in fits)
    best = [hint for values, hint in fits if len(values) == smallest]
    if len(best) != 1:
        return ""
    shown = ",".join(str(v) for v in sorted(present - {0}))
    return f"values {{{shown}}}: {best[0]}"


def get_layout(key: str) -> Layout:
    """The layout of ``DatasetConfig.layout``: ``brats``, ``brats2023``, ``atlas`` or ``isles``."""
    if key not in LAYOUTS:
        raise DatasetError(f"unknown dataset layout {key!r}; expected one of {list(LAYOUTS)}")
    return LAYOUTS[key]
