"""Built-in synthetic brain-lesion data written in the exact on-disk layout of BraTS 2021 (or ATLAS v2.0,
ISLES 2015 SISS), so that the default benchmark run reads it through the real-data loaders.

Each subject is the nilearn MNI152 brain (offline package data) under a random affine and a smooth
random deformation, with its own fine structure (folding, sharp tissue borders, within-tissue inhomogeneity:
``synthetic_texture``, calibrated on real scans), with tumour-like (necrotic core off-centre in an enhancing
rim, oedema along white matter; BraTS labels 1/4/2) or stroke-like lesions (BraTS label 2; binary label 1 in the
ATLAS and ISLES layouts) of irregular shape and a wide range of sizes, which push the surrounding tissue away
(mass effect) before they are painted, plus small MS-like white-matter lesions. Contrasts (FLAIR, T1, T1ce, T2;
DWI for ISLES) come from the tissue maps with per-subject intensities, a heterogeneous lesion texture, a smooth
bias field and Rician noise; the background is exactly 0 (skull-stripped), except
for the crude head of the (not skull-stripped) ATLAS layout. Within the axial slice range (default
z 70–89, the lateral ventricles) every subject has lesion slices and healthy slices.

Everything is seeded per (seed, subject index, stream): the same config gives byte-identical arrays
whatever the number of worker processes. Modules: ``synthetic_anatomy`` (template, warps, grids),
``synthetic_texture`` (individual fine structure), ``synthetic_lesions`` (shapes), ``synthetic_contrast``
(intensities), ``synthetic_io`` (layouts, figure).
"""

from __future__ import annotations

import ctypes
import hashlib
import io
import json
import logging
import multiprocessing
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np

from datasets.synthetic_anatomy import (
    STEP,
    CoarseMap,
    Geometry,
    SubjectTransform,
    Templates,
    coarse_map,
    geometry,
    load_templates,
    nominal_anatomy,
    warp_box,
)
from datasets.synthetic_contrast import BrainVoxels, add_head, draw_contrasts, render
from datasets.synthetic_io import LABEL, MODALITIES, subject_files, subject_id, write_sample_figure, write_volume
from datasets.synthetic_lesions import (
    CLASS_NAMES,
    MIN_LESION_VOXELS,
    STROKE,
    Lesion,
    draw_lesion,
    merge,
    rasterise,
)
from datasets.synthetic_texture import TextureParams, TissueVariation

log = logging.getLogger(__name__)

GENERATOR_VERSION = 3  # bump whenever the generated arrays change for the same config
FAMILIES = ("tumour", "stroke")
LAYOUT_FAMILIES = {"brats": ("tumour", "stroke"), "atlas": ("stroke",), "isles": ("stroke",)}
MARKER = ".synthetic_complete.json"  # written last: the set is complete and has this config hash
IN_PROGRESS = ".synthetic_in_progress.json"  # written first: the directory belongs to the generator
LOCK = ".synthetic.lock"
RECORDS = ".synthetic_subjects"  # one completion record per finished subject: an interrupted set resumes
PR_SET_PDEATHSIG = 1  # <linux/prctl.h>: workers get SIGTERM when the generating thread ends
PARENT_POLL_S = 0.5  # elsewhere a worker checks this often whether its parent is gone
DESCRIPTION = "dataset_description.json"
FIGURE = "samples.png"
STREAM_FAMILY, STREAM_TRANSFORM, STREAM_LESIONS, STREAM_CONTRAST, STREAM_NOISE, STREAM_TEXTURE = range(6)
MAX_ATTEMPTS = 60  # lesion sets redrawn until the slice constraints hold
PLACEMENT_TRIES = 40
SAMPLE_ROWS_PER_FAMILY = 2


@dataclass(frozen=True)
class SyntheticConfig:
    """Everything that decides the generated arrays (its :meth:`config_hash` names the set).

    Attributes:
        n_subjects: number of lesion subjects.
        n_healthy_subjects: lesion-free subjects written after them (indices ``n_subjects ...``; own seeded
            anatomy), for the whole-volume evaluation's false positives on healthy subjects: the runner puts
            them in test (:func:`healthy_subject_ids`).
        seed: base seed; subject ``i`` uses streams seeded by ``(seed, stream, i)``.
        layout: on-disk layout and grid: ``brats`` (240x240x155), ``atlas`` (MNI 197x233x189, T1 only),
            ``isles`` (230x230x154).
        lesion_families: families drawn from (balanced over subjects, seeded order); ATLAS and ISLES
            use only ``stroke``.
        tumour_count, stroke_count: (min, max) lesions per subject (more lesions are less likely).
        tumour_radius_mm, stroke_radius_mm: (min, max) equivalent radius of a whole lesion, drawn
            log-uniformly; the z semi-axis is capped at ``max_lesion_z_mm``.
        small_lesion_count, small_lesion_radius_mm: (min, max) number (uniform) and radius (log-uniform) of
            small MS-like white-matter lesions added to every lesion subject near the slice range (BraTS label 2,
            the ATLAS/ISLES lesion label), so that small lesions and the small size bin exist.
        slice_range: axial ``[start, stop)`` in which every subject has at least
            ``min_lesion_slices`` lesion slices and ``min_healthy_slices`` lesion-free slices.
        lesion_contrast: scales every lesion's contrast to white matter (``1 + (ratio - 1) * this``).
        mass_effect: scales the tissue displacement around lesions (0 = none).
        noise_level: Rician noise std relative to the white-matter intensity (jittered ±30 %).
        bias_strength: amplitude of the cubic log-bias-field coefficients.
        rotation_deg, scale_jitter, translation/deformation: random affine (±degrees per axis,
            ±relative scale per axis) and std of the smooth deformation (mm).
        tissue_sharpness, folding, csf_folding, folding_mm: the subject's own fine structure
            (:mod:`datasets.synthetic_texture`): gain on the template's tissue log-odds, std of the random
            GM-vs-WM and CSF log-odds shifts and their node spacing (mm).
        inhomogeneity, inhomogeneity_mm: std of the log intensity variation inside each tissue class
            (jittered ±30 % per contrast) and the node spacing (mm) of its finer scale.
    """

    n_subjects: int = 40
    n_healthy_subjects: int = 0
    seed: int = 0
    layout: Literal["brats", "atlas", "isles"] = "brats"
    lesion_families: tuple[str, ...] = ("tumour", "stroke")
    tumour_count: tuple[int, int] = (1, 2)
    stroke_count: tuple[int, int] = (1, 3)
    tumour_radius_mm: tuple[float, float] = (18.0, 55.0)
    stroke_radius_mm: tuple[float, float] = (4.0, 36.0)
    small_lesion_count: tuple[int, int] = (0, 4)
    small_lesion_radius_mm: tuple[float, float] = (2.5, 5.0)
    max_lesion_z_mm: float = 20.0
    slice_range: tuple[int, int] = (70, 90)
    min_healthy_slices: int = 5
    min_lesion_slices: int = 2
    lesion_contrast: float = 1.0
    mass_effect: float = 1.0
    noise_level: float = 0.05
    bias_strength: float = 0.15
    rotation_deg: float = 5.0
    scale_jitter: float = 0.05
    deformation_mm: float = 2.5
    tissue_sharpness: float = 3.0
    folding: float = 2.5
    csf_folding: float = 0.5
    folding_mm: float = 1.5
    inhomogeneity: float = 0.10
    inhomogeneity_mm: float = 1.5

    def __post_init__(self) -> None:
        for f in fields(self):  # lists from YAML / OmegaConf become tuples (hashable, frozen)
            value = getattr(self, f.name)
            if isinstance(value, list):
                object.__setattr__(self, f.name, tuple(value))
        if self.layout not in LAYOUT_FAMILIES:
            raise ValueError(f"SyntheticConfig.layout={self.layout!r}; expected one of {sorted(LAYOUT_FAMILIES)}")
        unknown = set(self.lesion_families) - set(FAMILIES)
        if unknown or not self.lesion_families:
            raise ValueError(f"SyntheticConfig.lesion_families={self.lesion_families}; choose from {FAMILIES}")
        if not self.families:
            raise ValueError(
                f"layout {self.layout!r} supports only {LAYOUT_FAMILIES[self.layout]} lesions, "
                f"lesion_families={self.lesion_families}"
            )
        if self.n_healthy_subjects < 0:
            raise ValueError(f"SyntheticConfig: n_healthy_subjects={self.n_healthy_subjects} must be >= 0")
        if self.n_subjects < 1 or self.seed < 0:
            raise ValueError(f"SyntheticConfig: n_subjects={self.n_subjects} must be >= 1, seed={self.seed} >= 0")
        lo, hi = self.small_lesion_count
        if not 0 <= lo <= hi:
            raise ValueError(f"SyntheticConfig.small_lesion_count={self.small_lesion_count}: need 0 <= min <= max")
        for name in ("tumour_count", "stroke_count", "tumour_radius_mm", "stroke_radius_mm", "small_lesion_radius_mm"):
            lo, hi = getattr(self, name)
            if not 0 < lo <= hi:
                raise ValueError(f"SyntheticConfig.{name}={getattr(self, name)}: need 0 < min <= max")
        start, stop = self.slice_range
        depth = geometry(self.layout).shape[2]
        if not 0 <= start < stop <= depth:
            raise ValueError(f"SyntheticConfig.slice_range={self.slice_range} outside the {depth} axial slices")
        if stop - start < self.min_healthy_slices + self.min_lesion_slices + 2 or self.min_lesion_slices < 1:
            raise ValueError(
                f"SyntheticConfig: slice_range {self.slice_range} too short for min_healthy_slices="
                f"{self.min_healthy_slices} + min_lesion_slices={self.min_lesion_slices} (+2 slack)"
            )

    @property
    def families(self) -> tuple[str, ...]:
        """The lesion families actually used: ``lesion_families`` allowed by the layout."""
        return tuple(f for f in self.lesion_families if f in LAYOUT_FAMILIES[self.layout])

    @property
    def n_total(self) -> int:
        """Lesion and healthy subjects together (subject indices ``0 .. n_total - 1``)."""
        return self.n_subjects + self.n_healthy_subjects

    def config_hash(self) -> str:
        """Short hash of every field and of :data:`GENERATOR_VERSION`."""
        blob = json.dumps({"generator_version": GENERATOR_VERSION, **asdict(self)}, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:12]


def healthy_subject_ids(config: SyntheticConfig) -> list[str]:
    """Ids of the lesion-free subjects (they belong in test: ``DatasetConfig.test_only_subjects``)."""
    return [subject_id(config.layout, i) for i in range(config.n_subjects, config.n_total)]


def _rng(config: SyntheticConfig, stream: int, index: int = 0) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence(config.seed, spawn_key=(stream, index)))


HEALTHY = "healthy"  # family of the lesion-free subjects


def subject_families(config: SyntheticConfig) -> list[str]:
    """Lesion family of every subject: the families in equal shares, in a seeded order, then ``healthy``."""
    fams = config.families
    base = [fams[i % len(fams)] for i in range(config.n_subjects)]
    order = _rng(config, STREAM_FAMILY).permutation(config.n_subjects)
    return [base[int(k)] for k in order] + [HEALTHY] * config.n_healthy_subjects


@dataclass
class SubjectPlan:
    """A subject's anatomy transform, lesions, coarse mapping and lesion classes (internal codes)."""

    index: int
    family: str
    transform: SubjectTransform
    lesions: list[Lesion]
    cmap: CoarseMap
    classes: np.ndarray  # uint8, full grid: 0, NECROSIS, OEDEMA, ENHANCING, STROKE
    attempts: int
    variation: TissueVariation


def subject_plan(config: SyntheticConfig, index: int) -> SubjectPlan:
    """Draw the subject's transform and lesions (redrawn until the slice constraints hold; none for a
    healthy subject)."""
    if not 0 <= index < config.n_total:
        raise IndexError(f"subject index {index} outside 0..{config.n_total - 1}")
    geom, templates = geometry(config.layout), load_templates()
    family = subject_families(config)[index]
    transform = SubjectTransform.draw(
        _rng(config, STREAM_TRANSFORM, index),
        config.rotation_deg,
        config.scale_jitter,
        config.deformation_mm,
        geom.transform_scale,
    )
    nominal = nominal_anatomy(geom, transform, templates)
    variation = TissueVariation.draw(_rng(config, STREAM_TEXTURE, index), geom.shape, texture_params(config))
    if family == HEALTHY:
        cmap = coarse_map(geom, transform, [], nominal, templates)
        classes = np.zeros(geom.shape, np.uint8)
        return SubjectPlan(index, family, transform, [], cmap, classes, attempts=0, variation=variation)
    rng = _rng(config, STREAM_LESIONS, index)
    for attempt in range(1, MAX_ATTEMPTS + 1):
        lesions = _draw_lesions(rng, family, nominal, config)
        if not lesions:
            continue
        effects = [lesion.mass_effect(config.mass_effect) for lesion in lesions]
        cmap = coarse_map(geom, transform, effects, nominal, templates)
        classes, sizes = _rasterise_all(lesions, cmap, templates, geom, variation)
        if min(sizes) >= MIN_LESION_VOXELS and _slices_ok(classes, config):
            return SubjectPlan(index, family, transform, lesions, cmap, classes, attempt, variation)
    raise RuntimeError(
        f"synthetic subject {index}: no lesion set met the slice constraints in {MAX_ATTEMPTS} attempts "
        f"(slice_range={config.slice_range}, min_healthy_slices={config.min_healthy_slices}, "
        f"min_lesion_slices={config.min_lesion_slices}); relax them or reduce lesion sizes"
    )


def _draw_lesions(
    rng: np.random.Generator, family: str, nominal: dict[str, np.ndarray], config: SyntheticConfig
) -> list[Lesion]:
    """Lesion parameters; the first lesion's nominal z extent overlaps part of the slice range."""
    low, high = config.tumour_count if family == "tumour" else config.stroke_count
    count = low
    while count < high and rng.random() < 0.35:
        count += 1
    r_low, r_high = config.tumour_radius_mm if family == "tumour" else config.stroke_radius_mm
    z0, z1 = config.slice_range
    slices = np.arange(z0, z1)
    max_cover = len(slices) - config.min_healthy_slices - 1
    min_cover = config.min_lesion_slices + 1
    pts = nominal["points"]
    if family == "tumour":  # gliomas grow in white matter, away from the surface
        allowed = (nominal["wm"] >= 0.5) & (nominal["depth"] >= 10)
    else:
        allowed = (nominal["brain"] >= 0.5) & (nominal["gm"] + nominal["wm"] >= 0.6) & (nominal["depth"] >= 3)
    covered = np.zeros(len(slices), bool)
    lesions: list[Lesion] = []
    for k in range(count):
        for _ in range(PLACEMENT_TRIES):
            radius = float(np.exp(rng.uniform(np.log(r_low), np.log(r_high))))
            shape = draw_lesion(rng, family, np.zeros(3), radius, config.max_lesion_z_mm)
            hz = shape.z_interval()[1]
            where = allowed
            if k == 0:
                options = np.arange(np.floor(z0 - hz), np.ceil(z1 + hz) + 1)
                cover = (np.abs(slices[None, :] - options[:, None]) <= hz).sum(1)
                keep = (cover >= min_cover) & (cover <= max_cover)
                if not keep.any():
                    continue
                weight = cover[keep].astype(float) ** 3  # favour lesions that reach well into the range
                cz = float(rng.choice(options[keep], p=weight / weight.sum()))
                where = allowed & (np.abs(pts[2] - cz) <= STEP / 2)
            nodes = np.argwhere(where)
            if len(nodes) == 0:
                continue
            node = nodes[rng.integers(len(nodes))]
            centre = pts[(slice(None), *node)] + rng.uniform(-STEP / 2, STEP / 2, 3)
            if k == 0:
                centre[2] = cz + rng.uniform(-0.5, 0.5)
            lesion = replace(shape, centre=centre)
            lo, hi = lesion.z_interval()
            now = covered | ((slices >= lo) & (slices <= hi))
            if now.sum() > max_cover:
                continue
            covered = now
            lesions.append(lesion)
            break
        else:
            if k == 0:
                return []
            break
    return lesions + _small_lesions(rng, nominal, config, covered)


SMALL_LESION_MARGIN = 4  # small lesions are centred within this many slices of the slice range


def _small_lesions(
    rng: np.random.Generator, nominal: dict[str, np.ndarray], config: SyntheticConfig, covered: np.ndarray
) -> list[Lesion]:
    """Small white-matter lesions near the slice range that keep its lesion-free slices (``covered``: the
    range's slices the lesions drawn so far reach; updated in place)."""
    low, high = config.small_lesion_count
    count = int(rng.integers(low, high + 1))
    z0, z1 = config.slice_range
    slices = np.arange(z0, z1)
    max_cover = len(slices) - config.min_healthy_slices - 1
    pts = nominal["points"]
    near = (pts[2] >= z0 - SMALL_LESION_MARGIN) & (pts[2] < z1 + SMALL_LESION_MARGIN)
    nodes = np.argwhere((nominal["wm"] >= 0.6) & (nominal["depth"] >= 8) & near)
    lesions: list[Lesion] = []
    for _ in range(count if len(nodes) else 0):
        radius = float(np.exp(rng.uniform(*np.log(config.small_lesion_radius_mm))))
        node = nodes[rng.integers(len(nodes))]
        centre = pts[(slice(None), *node)] + rng.uniform(-STEP / 2, STEP / 2, 3)
        lesion = draw_lesion(rng, "wmh", centre, radius, config.max_lesion_z_mm)
        lo, hi = lesion.z_interval()
        now = covered | ((slices >= lo) & (slices <= hi))
        if now.sum() <= max_cover:
            covered[:] = now
            lesions.append(lesion)
    return lesions


def texture_params(config: SyntheticConfig) -> TextureParams:
    """The config's fine-structure fields (:mod:`datasets.synthetic_texture`)."""
    return TextureParams(
        config.tissue_sharpness, config.folding, config.csf_folding, config.folding_mm, config.inhomogeneity_mm
    )


def _rasterise_all(
    lesions: list[Lesion], cmap: CoarseMap, templates: Templates, geom: Geometry, variation: TissueVariation
) -> tuple[np.ndarray, list[int]]:
    classes = np.zeros(geom.shape, np.uint8)
    sizes = []
    for lesion in lesions:
        box = lesion.box(geom.shape)
        patch = rasterise(lesion, variation.individual(warp_box(cmap, templates, box)))
        sizes.append(int(np.count_nonzero(patch)))
        merge(classes, box, patch)
    return classes, sizes


def _slices_ok(classes: np.ndarray, config: SyntheticConfig) -> bool:
    z0, z1 = config.slice_range
    lesion_slices = int(classes[:, :, z0:z1].any(axis=(0, 1)).sum())
    return lesion_slices >= config.min_lesion_slices and (z1 - z0) - lesion_slices >= config.min_healthy_slices


def label_values(classes: np.ndarray, layout: str) -> np.ndarray:
    """Internal classes → the layout's labels: BraTS {1 necrosis, 2 oedema or stroke, 4 enhancing};
    ATLAS and ISLES binary {0, 1}."""
    if layout == "brats":
        lut = np.arange(8, dtype=np.uint8)
        lut[STROKE] = 2
        return lut[classes]
    return (classes > 0).astype(np.uint8)


def subject_labels(config: SyntheticConfig, index: int) -> np.ndarray:
    """The subject's label volume (layout values) without rendering any image: cheap, and identical to
    the label the full generator writes."""
    return label_values(subject_plan(config, index).classes, config.layout)


@dataclass
class SyntheticSubject:
    """One generated subject in memory."""

    id: str
    family: str
    images: dict[str, np.ndarray]  # modality -> int16 volume
    label: np.ndarray  # uint8, layout values
    classes: np.ndarray  # uint8 internal classes (see synthetic_lesions)
    plan: SubjectPlan
    tissue: dict[str, np.ndarray] | None  # full-grid gm/wm/csf (float32) and brain (bool), on request


def generate_subject(config: SyntheticConfig, index: int, with_tissue: bool = False) -> SyntheticSubject:
    """Generate subject ``index`` in memory (what :func:`ensure_synthetic_dataset` writes)."""
    plan = subject_plan(config, index)
    geom, templates = geometry(config.layout), load_templates()
    anatomy = plan.variation.individual(warp_box(plan.cmap, templates, plan.cmap.bbox))
    modalities = MODALITIES[config.layout]
    rng = _rng(config, STREAM_CONTRAST, index)
    contrasts = draw_contrasts(
        rng, modalities, config.noise_level, config.bias_strength, config.lesion_contrast, config.inhomogeneity
    )
    texture_seed = int(rng.integers(2**31))
    brain = np.zeros(geom.shape, bool)
    brain[anatomy.box] = anatomy.brain
    head = add_head(brain) if config.layout == "atlas" else None  # ATLAS is not skull-stripped
    voxels = BrainVoxels.of(anatomy, plan.variation.modulation(anatomy.box))
    noise_rng = _rng(config, STREAM_NOISE, index)
    images = {
        m: render(contrasts[m], voxels, anatomy.box, plan.classes, geom.shape, texture_seed, noise_rng, head)
        for m in modalities
    }
    tissue = None
    if with_tissue:
        tissue = {"brain": brain}
        for name in ("gm", "wm", "csf"):
            full = np.zeros(geom.shape, np.float32)
            full[anatomy.box] = getattr(anatomy, name)
            tissue[name] = full
    return SyntheticSubject(
        subject_id(config.layout, index),
        plan.family,
        images,
        label_values(plan.classes, config.layout),
        plan.classes,
        plan,
        tissue,
    )


def summarise(subject: SyntheticSubject, config: SyntheticConfig) -> dict[str, Any]:
    """Per-subject record of ``dataset_description.json``."""
    z0, z1 = config.slice_range
    area = np.count_nonzero(subject.label[:, :, z0:z1], axis=(0, 1))
    nx, ny = subject.label.shape[:2]
    best = int(np.argmax(area))
    classes = np.bincount(subject.classes.ravel(), minlength=8)
    labels = np.bincount(subject.label.ravel(), minlength=8)
    return {
        "id": subject.id,
        "index": subject.plan.index,
        "family": subject.family,
        "n_lesions": len(subject.plan.lesions),
        "lesion_voxels": int(np.count_nonzero(subject.label)),
        "compartment_voxels": {CLASS_NAMES[c]: int(classes[c]) for c in CLASS_NAMES if classes[c]},
        "label_voxels": {str(v): int(labels[v]) for v in range(1, 8) if labels[v]},
        "lesion_slices_in_range": [z0 + int(z) for z in np.nonzero(area)[0]],
        "healthy_slices_in_range": int((area == 0).sum()),
        "largest_slice": {
            "z": z0 + best,
            "area_px": int(area[best]),
            "area_px_at_128": round(float(area[best]) * 128 * 128 / (nx * ny), 1),
        },
        "lesion_radii_mm": [round(float(np.mean(lesion.axes)), 1) for lesion in subject.plan.lesions],
        "attempts": subject.plan.attempts,
    }


def _record_path(root: Path, index: int) -> Path:
    return root / RECORDS / f"{index:05d}.json"


def _sample_path(root: Path, index: int) -> Path:
    return root / RECORDS / f"{index:05d}.sample.npz"


def _write_subject(config: SyntheticConfig, index: int, root: Path, keep_sample: bool) -> None:
    """Worker: generate and write one subject's volumes, then its completion record (written atomically, last:
    the config hash and the subject's summary; before it, for a figure subject, the slices the figure shows)."""
    subject = generate_subject(config, index)
    affine = geometry(config.layout).affine
    files = subject_files(root, config.layout, index)
    for modality, volume in subject.images.items():
        write_volume(files[modality], volume, affine)
    write_volume(files[LABEL], subject.label, affine)
    summary = summarise(subject, config)
    (root / RECORDS).mkdir(exist_ok=True)
    if keep_sample:
        z = summary["largest_slice"]["z"]
        arrays: dict[str, Any] = {f"image_{m}": v[:, :, z] for m, v in subject.images.items()}
        buffer = io.BytesIO()
        np.savez_compressed(buffer, label=subject.classes[:, :, z], **arrays)
        _atomic_write_bytes(_sample_path(root, index), buffer.getvalue())
    record = {"config_hash": config.config_hash(), "summary": summary}
    _atomic_write_text(_record_path(root, index), json.dumps(record))


def _finished(root: Path, config: SyntheticConfig, samples: set[int]) -> dict[int, dict[str, Any]]:
    """The subjects already written for this config (a record with its hash, every volume and, for a figure
    subject, its slices): index -> summary."""
    digest, done = config.config_hash(), {}
    for index in range(config.n_total):
        try:
            record = json.loads(_record_path(root, index).read_text())
        except (OSError, ValueError):
            continue
        if not isinstance(record, dict) or record.get("config_hash") != digest:
            continue
        if all(p.is_file() for p in _subject_paths(root, config, index, samples)):
            done[index] = record["summary"]
    return done


def _subject_paths(root: Path, config: SyntheticConfig, index: int, samples: set[int]) -> list[Path]:
    """Every file a finished subject has: its volumes, its record and (a figure subject) its slices."""
    paths = [*subject_files(root, config.layout, index).values(), _record_path(root, index)]
    return [*paths, _sample_path(root, index)] if index in samples else paths


def _load_sample(root: Path, summary: dict[str, Any]) -> dict[str, Any]:
    """A figure subject's slices, as :func:`~datasets.synthetic_io.write_sample_figure` takes them."""
    with np.load(_sample_path(root, summary["index"])) as arrays:
        images = {k.removeprefix("image_"): arrays[k] for k in arrays.files if k.startswith("image_")}
        label = arrays["label"]
    return {
        "id": summary["id"],
        "family": summary["family"],
        "z": summary["largest_slice"]["z"],
        "images": images,
        "label": label,
    }


def _init_worker(parent: int) -> None:
    """Worker initialiser: Ctrl-C is the parent's to handle (it ends the pool), the worker dies with its parent
    (even a SIGKILLed one), and one core per worker (no BLAS/OpenMP thread oversubscription)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _die_with(parent)
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - threadpoolctl comes with scikit-learn
        return
    threadpool_limits(1)


def _die_with(parent: int) -> None:
    """End this process when ``parent`` ends. Linux: the kernel sends SIGTERM (``PR_SET_PDEATHSIG``) when the
    thread that spawned the worker exits, i.e. the generating thread, which outlives the pool. Elsewhere: a
    daemon thread that polls for the parent's pid to change (re-parenting; POSIX)."""
    if sys.platform == "linux" and _parent_death_signal(signal.SIGTERM):
        if os.getppid() != parent:  # the parent died before the signal was armed
            os._exit(1)
        return
    threading.Thread(target=_watch_parent, args=(parent,), daemon=True, name="watch-parent").start()


def _parent_death_signal(sig: int) -> bool:
    """Ask Linux to send ``sig`` to this process when its parent dies; whether that worked."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return bool(libc.prctl(PR_SET_PDEATHSIG, int(sig), 0, 0, 0) == 0)
    except (OSError, AttributeError):
        return False


def _watch_parent(parent: int) -> None:
    """Exit the process as soon as its parent is no longer ``parent``."""
    while os.getppid() == parent:
        time.sleep(PARENT_POLL_S)
    os._exit(1)


def _sample_indices(families: list[str]) -> set[int]:
    chosen: list[int] = []
    for fam in FAMILIES:
        chosen += [i for i, f in enumerate(families) if f == fam][:SAMPLE_ROWS_PER_FAMILY]
    return set(chosen)


def _generate(
    root: Path, config: SyntheticConfig, todo: list[int], samples: set[int], workers: int, progress: bool
) -> None:
    """Write the subjects ``todo`` (in worker processes when ``workers > 1``, else or if they fail here)."""
    from tqdm.auto import tqdm

    finished: set[int] = set()
    bar = tqdm(
        total=config.n_total,
        initial=config.n_total - len(todo),
        desc=f"synthetic {config.layout}",
        unit="subject",
        disable=not progress,
    )

    def done(index: int) -> None:
        finished.add(index)
        bar.update()

    with bar:
        if workers > 1 and len(todo) > 1:
            try:
                _in_workers(root, config, todo, samples, workers, done)
            except BrokenProcessPool as error:  # e.g. a __main__ that spawned workers cannot re-import
                log.warning("synthetic data: worker processes failed (%s); generating the rest in this process", error)
        for index in todo:  # serial path, and whatever the workers did not finish
            if index not in finished:
                _write_subject(config, index, root, index in samples)
                done(index)


def _in_workers(
    root: Path, config: SyntheticConfig, todo: list[int], samples: set[int], workers: int, done: Callable[[int], None]
) -> None:
    """Write ``todo`` in spawned worker processes, calling ``done(index)`` as each subject finishes. On any
    exception (Ctrl-C included) the pending subjects are cancelled and the workers terminated at once: the
    interrupt acts within a second, no worker outlives the call, and the finished subjects keep their records."""
    context = multiprocessing.get_context("spawn")  # no fork of a process that may hold threads
    pool = ProcessPoolExecutor(
        min(workers, len(todo)), mp_context=context, initializer=_init_worker, initargs=(os.getpid(),)
    )
    try:
        futures = {pool.submit(_write_subject, config, i, root, i in samples): i for i in todo}
        for future in as_completed(futures):
            future.result()
            done(futures[future])
    except BaseException:
        _terminate(pool)
        raise
    pool.shutdown()


def _terminate(pool: ProcessPoolExecutor) -> None:
    """Cancel the pending work and end the workers now (``shutdown`` alone waits for the running subjects)."""
    processes = list(pool._processes.values())  # no public handle before Python 3.14's terminate_workers()
    pool.shutdown(wait=False, cancel_futures=True)
    for process in processes:
        process.terminate()
    for process in processes:
        process.join(timeout=5)


def _atomic_write_bytes(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def _atomic_write_text(path: Path, text: str) -> None:
    _atomic_write_bytes(path, text.encode())


def _is_complete(root: Path, config: SyntheticConfig) -> bool:
    try:
        marker = json.loads((root / MARKER).read_text())
    except (OSError, ValueError):
        return False
    if marker.get("config_hash") != config.config_hash():
        return False
    return all(p.is_file() for i in range(config.n_total) for p in subject_files(root, config.layout, i).values())


def _owner_hash(root: Path) -> str | None:
    """The config hash the generator recorded in ``root``: the in-progress marker's, else the complete set's."""
    for name in (IN_PROGRESS, MARKER):
        path = root / name
        if path.exists():
            try:
                record = json.loads(path.read_text())
            except (OSError, ValueError):
                return None
            return record.get("config_hash") if isinstance(record, dict) else None
    return None


def _clear(root: Path, digest: str, keep: frozenset[Path] = frozenset()) -> None:
    """Take ``root`` over for the set of config ``digest``: refuse foreign data, write the in-progress marker,
    then delete everything but the lock and ``keep`` (the finished subjects of a resumed set of this hash)."""
    entries = [p for p in root.iterdir() if p.name != LOCK]
    if entries and not ((root / MARKER).exists() or (root / IN_PROGRESS).exists()):
        raise FileExistsError(
            f"{root} is not empty and holds no {MARKER} or {IN_PROGRESS}: it was not written by the synthetic "
            f"generator, which refuses to overwrite it. Point the synthetic dataset root at a new or empty folder."
        )
    _atomic_write_text(root / IN_PROGRESS, json.dumps({"config_hash": digest}))
    for entry in entries:
        _remove(entry, keep | {root / IN_PROGRESS})


def _remove(path: Path, keep: frozenset[Path]) -> None:
    """Delete ``path`` (a folder recursively, a link itself) but not the files in ``keep`` nor their folders."""
    if path in keep:
        return
    if path.is_dir() and not path.is_symlink():
        for child in path.iterdir():
            _remove(child, keep)
        if not any(path.iterdir()):
            path.rmdir()
    else:
        path.unlink()


def synthetic_dataset_hash(root: Path) -> str | None:
    """Config hash of the complete synthetic set in ``root`` (None if there is none): include it in
    caches of data read from ``root``, since regenerating keeps the path."""
    try:
        return json.loads((Path(root) / MARKER).read_text()).get("config_hash")
    except (OSError, ValueError):
        return None


def ensure_synthetic_dataset(root: Path, config: SyntheticConfig, workers: int = 2, progress: bool = True) -> Path:
    """Generate into root unless an identical set (same config hash, recorded in a marker file written LAST,
    after all volumes) exists; returns root.

    Each subject gets a completion record (config hash, summary) after its volumes, so an interrupted run
    (Ctrl-C, a killed job) keeps its finished subjects: the next call with the same config writes only the
    missing ones, byte-identical to an uninterrupted run (subjects are seeded per index). Anything else in a
    set of another config hash, or of no record, is deleted and regenerated. Ctrl-C stops the worker processes
    at once, and workers die with a killed parent.

    Concurrent callers are serialised by a file lock in ``root``. A non-empty ``root`` that the generator
    did not write is never deleted (:class:`FileExistsError`). Besides the volumes it writes
    ``dataset_description.json`` (config, hash, per-subject family and lesion statistics) and
    ``samples.png`` (sample slices of every contrast with the label outline).
    """
    from filelock import FileLock

    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    digest = config.config_hash()
    with FileLock(str(root / LOCK)):
        if _is_complete(root, config):
            log.info("synthetic data %s (config %s) already complete: not regenerated", root, digest)
            return root
        samples = _sample_indices(subject_families(config))
        done = _finished(root, config, samples) if _owner_hash(root) == digest else {}
        if done:
            log.info(
                "synthetic data in %s: resuming, %d of %d subjects already written", root, len(done), config.n_total
            )
        elif any(p.name != LOCK for p in root.iterdir()):
            log.info("synthetic data in %s are stale or incomplete: regenerating", root)
        _clear(root, digest, frozenset(p for i in done for p in _subject_paths(root, config, i, samples)))
        todo = [i for i in range(config.n_total) if i not in done]
        log.info(
            "synthetic data: generating %d %s subjects (config %s) into %s", len(todo), config.layout, digest, root
        )
        started = time.perf_counter()
        try:
            _generate(root.absolute(), config, todo, samples, workers, progress)
        except KeyboardInterrupt:
            log.warning("synthetic data: interrupted; the finished subjects in %s are kept for the next run", root)
            raise
        seconds = time.perf_counter() - started
        records = _finished(root, config, samples)
        summaries = [records[i] for i in range(config.n_total)]
        figure = sorted(
            (_load_sample(root, records[i]) for i in samples), key=lambda s: (FAMILIES.index(s["family"]), s["id"])
        )
        geom = geometry(config.layout)
        title = f"synthetic {config.layout} (config {digest}): largest lesion slice in z {config.slice_range}"
        write_sample_figure(root / FIGURE, figure, MODALITIES[config.layout], geom.affine, title)
        description = _description(config, geom, summaries, seconds, workers)
        _atomic_write_text(root / DESCRIPTION, json.dumps(description, indent=1))
        _atomic_write_text(
            root / MARKER,
            json.dumps(
                {
                    "config_hash": digest,
                    "generator_version": GENERATOR_VERSION,
                    "layout": config.layout,
                    "n_subjects": config.n_subjects,
                    "n_healthy_subjects": config.n_healthy_subjects,
                }
            ),
        )
        (root / IN_PROGRESS).unlink()
    log.info("synthetic data: %d %s subjects written to %s in %.1f s", len(todo), config.layout, root, seconds)
    return root


def _description(
    config: SyntheticConfig, geom: Geometry, summaries: list[dict[str, Any]], seconds: float, workers: int
) -> dict[str, Any]:
    import nibabel
    import nilearn
    import scipy

    if config.layout == "brats":
        labels = {
            "1": "necrotic tumour core",
            "2": "peritumoural oedema (tumour subjects) or stroke lesion (stroke subjects)",
            "4": "enhancing tumour rim",
        }
    else:
        labels = {"1": "stroke lesion"}
    return {
        "name": f"synthetic-{config.layout}",
        "generator": "datasets.synthetic",
        "generator_version": GENERATOR_VERSION,
        "config_hash": config.config_hash(),
        "config": asdict(config),
        "lesion_families_used": list(config.families),
        "modalities": list(MODALITIES[config.layout]),
        "labels": labels,
        "grid": {
            "shape": list(geom.shape),
            "voxel_mm": [1.0, 1.0, 1.0],
            "affine": geom.affine.tolist(),
            "display": "datasets.synthetic_io.display_axial: radiological, anterior up",
        },
        "anatomy": "nilearn MNI152 (ICBM 2009a sym) GM/WM templates and brain mask, CSF = mask - GM - WM; "
        "per-subject random affine + smooth deformation, individual folding, sharpened tissue borders and "
        "within-tissue inhomogeneity (datasets/synthetic_texture.py); lateral ventricles at z ~70-89 "
        "(BraTS/ISLES grids)",
        "skull": "crude head shells (CSF/dura, skull, scalp) around the brain, 0 beyond"
        if config.layout == "atlas"
        else "skull-stripped: exactly 0 outside the brain",
        "software": {
            "numpy": np.__version__,
            "scipy": scipy.__version__,
            "nilearn": nilearn.__version__,
            "nibabel": nibabel.__version__,
        },
        "generation_seconds": round(seconds, 1),
        "workers": workers,
        "subjects": summaries,
    }


__all__ = [
    "SyntheticConfig",
    "SyntheticSubject",
    "ensure_synthetic_dataset",
    "generate_subject",
    "healthy_subject_ids",
    "subject_families",
    "subject_labels",
    "subject_plan",
    "synthetic_dataset_hash",
    "label_values",
]
