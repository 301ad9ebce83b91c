"""Anatomy of the synthetic subjects: the MNI152 template, per-subject warps and the target grids.

Every subject is the nilearn MNI152 (ICBM 2009a symmetric, 1 mm) brain seen through a pull-back
mapping ``target voxel -> template voxel``: a mass-effect displacement around each lesion, the fixed
placement of the template in the target grid (:class:`Geometry`), a random affine and a smooth random
deformation. The mapping is evaluated exactly on a coarse grid (every :data:`STEP` voxels) and
trilinearly interpolated to the voxels with :func:`interp_separable`, whose value at a voxel does not
depend on which other voxels are evaluated with it: the cheap lesion-only path
(``datasets.synthetic.subject_labels``) and the full generator therefore see bit-identical anatomy.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import ndimage as ndi

STEP = 3  # coarse grid spacing (voxels) of the exactly evaluated mapping
CONTROL_SPACING = 12.0  # mm between control points of the random deformation
TEMPLATE_SHAPE = (197, 233, 189)
#: Template voxel (x, y, z) that BraTS/ISLES target grids are centred on: in-plane the centre of the
#: brain mask's bounding box, in z the lateral ventricles (template z 80–99 ↔ target z 70–89).
TEMPLATE_ANCHOR = np.array([98.0, 117.0, 90.0])
TARGET_Z_OFFSET = 10.0  # template z index = target z index + this (brats/isles)


@dataclass(frozen=True)
class Templates:
    """MNI152 tissue maps in template voxel space (float32, 197 x 233 x 189, RAS, 1 mm)."""

    gm: np.ndarray
    wm: np.ndarray
    brain: np.ndarray  # 0/1
    affine: np.ndarray


@functools.lru_cache(maxsize=1)
def load_templates() -> Templates:
    """The nilearn MNI152 templates (package data, read offline; nilearn is imported lazily)."""
    from nilearn import datasets as nilearn_datasets

    def data(img: Any) -> np.ndarray:  # a nibabel image
        return np.ascontiguousarray(np.asarray(img.get_fdata(), dtype=np.float32))

    brain_img = nilearn_datasets.load_mni152_brain_mask(resolution=1)
    gm = data(nilearn_datasets.load_mni152_gm_template(resolution=1))
    wm = data(nilearn_datasets.load_mni152_wm_template(resolution=1))
    brain = data(brain_img)
    if gm.shape != TEMPLATE_SHAPE or wm.shape != TEMPLATE_SHAPE or brain.shape != TEMPLATE_SHAPE:
        raise RuntimeError(f"unexpected MNI152 template shapes {gm.shape}, {wm.shape}, {brain.shape}")
    return Templates(gm=gm * brain, wm=wm * brain, brain=brain, affine=np.asarray(brain_img.affine, dtype=float))


@dataclass(frozen=True)
class Geometry:
    """A target grid and where the template sits in it.

    Attributes:
        shape: array shape of every written volume.
        affine: voxel-to-world matrix written into the NIfTI headers.
        flip_xy: the array is LPS-ordered (BraTS, ISLES) while the template is RAS: template
            x = anchor_x + (centre_x - i), y = anchor_y + (centre_y - j), z = k + TARGET_Z_OFFSET.
            Without it the target grid *is* the template grid (ATLAS, MNI space).
        transform_scale: multiplies the random affine and deformation (ATLAS: data already
            registered to MNI, so only a registration residual remains).
    """

    shape: tuple[int, int, int]
    affine: np.ndarray
    flip_xy: bool
    transform_scale: float

    def canonical(self, p: np.ndarray) -> np.ndarray:
        """Target voxel coordinates ``[3, ...]`` → template voxel coordinates of the mean subject."""
        if not self.flip_xy:
            return p
        cx, cy = (self.shape[0] - 1) / 2.0, (self.shape[1] - 1) / 2.0
        return np.stack([TEMPLATE_ANCHOR[0] + (cx - p[0]), TEMPLATE_ANCHOR[1] + (cy - p[1]), p[2] + TARGET_Z_OFFSET])


def _lps_affine(shape: tuple[int, int, int]) -> np.ndarray:
    # BraTS 2021 headers: x and y flipped (LPS voxel order), origin such that j = 0 is anterior.
    return np.array([[-1.0, 0, 0, 0], [0, -1.0, 0, shape[1] - 1.0], [0, 0, 1.0, 0], [0, 0, 0, 1.0]])


def geometry(layout: str) -> Geometry:
    """The target grid of a layout: BraTS 240x240x155, ISLES 230x230x154 (LPS), ATLAS = MNI grid."""
    if layout == "brats":
        return Geometry((240, 240, 155), _lps_affine((240, 240, 155)), flip_xy=True, transform_scale=1.0)
    if layout == "isles":
        return Geometry((230, 230, 154), _lps_affine((230, 230, 154)), flip_xy=True, transform_scale=1.0)
    if layout == "atlas":
        affine = np.array([[1.0, 0, 0, -98.0], [0, 1.0, 0, -134.0], [0, 0, 1.0, -72.0], [0, 0, 0, 1.0]])
        return Geometry(TEMPLATE_SHAPE, affine, flip_xy=False, transform_scale=0.3)
    raise ValueError(f"unknown layout {layout!r}; expected 'brats', 'atlas' or 'isles'")


@dataclass(frozen=True)
class SubjectTransform:
    """Random pull-back transform ``q -> anchor + A^-1 (q - anchor - t) + u`` in template voxels."""

    inverse_linear: np.ndarray  # A^-1, 3 x 3
    translation: np.ndarray  # t, mm
    control: np.ndarray  # u on the control grid, [3, nx, ny, nz], mm

    @staticmethod
    def draw(
        rng: np.random.Generator, rotation_deg: float, scale_jitter: float, deformation_mm: float, magnitude: float
    ) -> SubjectTransform:
        angles = np.deg2rad(rng.uniform(-rotation_deg, rotation_deg, 3)) * magnitude
        scales = 1.0 + rng.uniform(-scale_jitter, scale_jitter, 3) * magnitude
        translation = rng.uniform(-2.0, 2.0, 3) * magnitude
        shape = tuple(int(np.ceil(n / CONTROL_SPACING)) + 3 for n in TEMPLATE_SHAPE)
        control = ndi.gaussian_filter(rng.standard_normal((3, *shape)), sigma=(0, 1.2, 1.2, 1.2), mode="wrap")
        control *= deformation_mm * magnitude / max(float(control.std()), 1e-12)
        linear = rotation_matrix(*angles) @ np.diag(scales)
        return SubjectTransform(np.linalg.inv(linear), translation, control.astype(np.float32))

    def affine(self, q: np.ndarray) -> np.ndarray:
        """The affine part at canonical points ``q`` ``[3, ...]``."""
        flat = q.reshape(3, -1)
        centred = flat - (TEMPLATE_ANCHOR + self.translation)[:, None]
        m = self.inverse_linear  # explicit 3x3 product: no BLAS threads, same result on any machine
        out = [
            TEMPLATE_ANCHOR[a] + m[a, 0] * centred[0] + m[a, 1] * centred[1] + m[a, 2] * centred[2] for a in range(3)
        ]
        return np.stack(out).reshape(q.shape)

    def displacement(self, q: np.ndarray) -> np.ndarray:
        """The smooth random displacement u (mm) at canonical points ``q`` ``[3, ...]``."""
        grid = q.reshape(3, -1) / CONTROL_SPACING + 1.0
        out = [ndi.map_coordinates(self.control[a], grid, order=1, mode="nearest") for a in range(3)]
        return np.stack(out).reshape(q.shape)


def rotation_matrix(ax: float, ay: float, az: float) -> np.ndarray:
    """Rotation by ``az`` about z after ``ay`` about y after ``ax`` about x (radians)."""
    cx, sx, cy, sy, cz, sz = np.cos(ax), np.sin(ax), np.cos(ay), np.sin(ay), np.cos(az), np.sin(az)
    rx = np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]])
    ry = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    rz = np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]])
    return rz @ ry @ rx


@dataclass(frozen=True)
class MassEffect:
    """Radial push of tissue away from ``centre``: pull-back ``r -> r (1 - strength exp(-r²/2σ²))``.

    ``strength < 1`` keeps the map monotone in r. The push is damped within ``DAMPING_MM`` of the brain
    surface (the skull does not move), so tissue is compressed rather than the brain outline bulging.
    """

    centre: np.ndarray  # target voxel coordinates
    strength: float
    sigma: float


DAMPING_MM = 15.0


def coarse_nodes(shape: tuple[int, int, int]) -> list[np.ndarray]:
    """Coarse node positions (target voxels) per axis; the last node lies at or beyond the edge."""
    return [np.arange((n - 1) // STEP + 2, dtype=np.float64) * STEP for n in shape]


def coarse_points(shape: tuple[int, int, int]) -> np.ndarray:
    """All coarse node positions as ``[3, nx, ny, nz]``."""
    return np.stack(np.meshgrid(*coarse_nodes(shape), indexing="ij"))


def apply_mass_effect(points: np.ndarray, effects: list[MassEffect], depth_mm: np.ndarray) -> np.ndarray:
    """Pull-back positions of ``points`` [3, ...] under all lesions' mass effects (applied in order)."""
    damping = np.clip(depth_mm / DAMPING_MM, 0.0, 1.0)
    out = points.copy()
    for effect in effects:
        if effect.strength <= 0:
            continue
        d = out - effect.centre.reshape(3, *([1] * (out.ndim - 1)))
        r2 = np.sum(d * d, axis=0)
        shrink = effect.strength * np.exp(-r2 / (2.0 * effect.sigma**2)) * damping
        out = out - d * shrink
    return out


@dataclass(frozen=True)
class CoarseMap:
    """The subject's mapping on the coarse grid and the brain's bounding box in the target grid."""

    source: np.ndarray  # [3, nx, ny, nz] float32 template voxel coordinates
    cells: np.ndarray  # [nx, ny, nz] bool: coarse cell (lower corner node) may contain brain
    bbox: tuple[slice, slice, slice]


def coarse_map(
    geom: Geometry,
    transform: SubjectTransform,
    effects: list[MassEffect],
    nominal: dict[str, np.ndarray],
    templates: Templates,
) -> CoarseMap:
    """Exact mapping at the coarse nodes and a (generous) bounding box of the warped brain.

    Order of the pull-back: mass effect, placement in the template, subject affine; the random
    deformation is added as a function of the node (it is smooth and random, so where in the chain it
    acts does not matter, and it is computed once per subject in :func:`nominal_anatomy`).
    """
    pts = nominal["points"]
    moved = apply_mass_effect(pts, effects, nominal["depth"])
    source = (transform.affine(geom.canonical(moved)) + nominal["displacement"]).astype(np.float32)
    brain = sample(templates.brain, source) > 0.01
    brain = ndi.binary_dilation(brain, iterations=2)  # margin: brain voxels lie in flagged cells
    idx = np.argwhere(brain)
    if idx.size == 0:
        raise RuntimeError("synthetic subject: the warped brain left the target grid")
    lo, hi = idx.min(0), idx.max(0)
    bbox = tuple(slice(max(0, int(a) * STEP), min(n, int(b) * STEP + 1)) for a, b, n in zip(lo, hi, geom.shape))
    return CoarseMap(source, brain, bbox)  # type: ignore[arg-type]


def nominal_anatomy(geom: Geometry, transform: SubjectTransform, templates: Templates) -> dict[str, np.ndarray]:
    """Brain, GM, WM, depth below the brain surface (mm) and the subject's random displacement at the
    coarse nodes, without lesions."""
    pts = coarse_points(geom.shape)
    canonical = geom.canonical(pts)
    displacement = transform.displacement(canonical)
    source = (transform.affine(canonical) + displacement).astype(np.float32)
    brain = sample(templates.brain, source)
    depth = ndi.distance_transform_edt(brain >= 0.5) * STEP
    return {
        "points": pts,
        "brain": brain,
        "gm": sample(templates.gm, source),
        "wm": sample(templates.wm, source),
        "depth": depth.astype(np.float32),
        "displacement": displacement,
    }


def sample(volume: np.ndarray, coords: np.ndarray) -> np.ndarray:
    """Trilinear sample of a template volume at template coordinates ``[3, ...]`` (0 outside)."""
    flat = coords.reshape(3, -1)
    out = ndi.map_coordinates(volume, flat, order=1, mode="constant", cval=0.0, prefilter=False, output=np.float32)
    return out.reshape(coords.shape[1:])


def interp_separable(grid: np.ndarray, positions: list[np.ndarray]) -> np.ndarray:
    """Trilinear interpolation of ``grid`` at the outer product of per-axis ``positions`` (grid units).

    Separable (one axis at a time), so it costs a few array operations per output voxel; the value at
    a point depends only on that point's coordinates, not on the other points evaluated with it.
    """
    out = grid
    for axis, pos in enumerate(positions):
        n = out.shape[axis]
        i0 = np.clip(np.floor(pos).astype(np.int64), 0, n - 1)
        i1 = np.minimum(i0 + 1, n - 1)
        shape = [1] * out.ndim
        shape[axis] = -1
        w = np.clip(pos - i0, 0.0, 1.0).astype(np.float32).reshape(shape)
        a = np.take(out, i0, axis=axis)
        out = a + (np.take(out, i1, axis=axis) - a) * w
    return out


def box_positions(box: tuple[slice, slice, slice]) -> list[np.ndarray]:
    """Coarse-grid positions of the voxels of a target box."""
    return [np.arange(s.start, s.stop, dtype=np.float64) / STEP for s in box]


def intersect(box: tuple[slice, ...], other: tuple[slice, ...]) -> tuple[slice, ...] | None:
    out = tuple(slice(max(a.start, b.start), min(a.stop, b.stop)) for a, b in zip(box, other))
    return None if any(s.stop <= s.start for s in out) else out


@dataclass
class AnatomyBox:
    """Warped tissue maps on a box of the target grid (zero outside the brain)."""

    box: tuple[slice, slice, slice]
    brain: np.ndarray  # bool
    gm: np.ndarray
    wm: np.ndarray

    @functools.cached_property
    def csf(self) -> np.ndarray:
        return np.where(self.brain, np.clip(1.0 - self.gm - self.wm, 0.0, 1.0), 0.0).astype(np.float32)

    def crop(self, box: tuple[slice, slice, slice]) -> AnatomyBox:
        """The part of this box covered by ``box`` (clipped to it, zero-padded where outside)."""
        shape = tuple(s.stop - s.start for s in box)
        out = AnatomyBox(box, np.zeros(shape, bool), np.zeros(shape, np.float32), np.zeros(shape, np.float32))
        common = intersect(box, self.box)
        if common is not None:
            dst = tuple(slice(c.start - b.start, c.stop - b.start) for c, b in zip(common, box))
            src = tuple(slice(c.start - b.start, c.stop - b.start) for c, b in zip(common, self.box))
            out.brain[dst], out.gm[dst], out.wm[dst] = self.brain[src], self.gm[src], self.wm[src]
        return out


def warp_box(cmap: CoarseMap, templates: Templates, box: tuple[slice, slice, slice]) -> AnatomyBox:
    """Tissue maps on ``box`` (only the part inside the brain bounding box can be brain)."""
    inner = intersect(box, cmap.bbox)
    if inner is None:
        shape = tuple(s.stop - s.start for s in box)
        return AnatomyBox(box, np.zeros(shape, bool), np.zeros(shape, np.float32), np.zeros(shape, np.float32))
    pos = box_positions(inner)  # type: ignore[arg-type]
    coords = np.stack([interp_separable(cmap.source[a], pos) for a in range(3)])
    # brain is sampled only in flagged coarse cells (a per-voxel rule: any box gives the same values)
    candidate = cmap.cells[np.ix_(*[np.floor(p).astype(np.int64) for p in pos])]
    brain = np.zeros(candidate.shape, bool)
    brain[candidate] = sample(templates.brain, coords[:, candidate]) >= 0.5
    gm = np.zeros(brain.shape, np.float32)
    wm = np.zeros(brain.shape, np.float32)
    inside = coords[:, brain]
    gm[brain] = sample(templates.gm, inside)
    wm[brain] = sample(templates.wm, inside)
    out = AnatomyBox(inner, brain, gm, wm)  # type: ignore[arg-type]
    return out if inner == box else out.crop(box)
