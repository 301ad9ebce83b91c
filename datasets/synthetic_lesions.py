"""Lesions of the synthetic subjects: drawing their parameters and rasterising their compartments.

A lesion is a thresholded smooth random field: ``1 - r + irregularity * n(p) (+ WM preference)``, where
``r`` is the distance from the centre in the lesion's (rotated, anisotropic) ellipsoid metric (for a
tumour's outline flat-topped in z, so that its axial sections stay large) and ``n`` a unit-variance
random field on two scales that grow with the lesion, faded out towards an outer envelope; the zero
level set is a lobulated, irregular outline. Tumours have three nested fields (oedema, whose outline also
follows white matter; core; necrosis, off-centre in the core: the enhancing rim = core minus necrosis, of varying
thickness), stroke lesions and small white-matter lesions (MS-like, a few pixels at 64 px) one. Oedema, stroke and
white-matter lesions spare CSF; every
compartment stays inside the brain. Compartments are kept as internal classes (:data:`NECROSIS`,
:data:`OEDEMA`, :data:`ENHANCING` as in BraTS, :data:`STROKE`) and mapped to a layout's labels when
written.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi

from datasets.synthetic_anatomy import AnatomyBox, MassEffect, interp_separable, rotation_matrix

NECROSIS, OEDEMA, ENHANCING, STROKE = 1, 2, 4, 5
#: Priority when compartments of different lesions overlap (higher wins).
PRIORITY = np.zeros(8, np.uint8)
PRIORITY[[OEDEMA, STROKE, ENHANCING, NECROSIS]] = [1, 1, 2, 3]
CLASS_NAMES = {NECROSIS: "necrosis", OEDEMA: "oedema", ENHANCING: "enhancing", STROKE: "stroke"}

NOISE_CLIP = 2.5  # the shape noise is clipped to ± this many standard deviations
#: The outline noise fades out between ENVELOPE - TAPER and ENVELOPE (ellipsoid-metric radius), where the
#: field is negative whatever the noise: a lesion never reaches its box's faces (no flat cuts).
ENVELOPE, TAPER = 1.6, 0.5
MIN_LESION_VOXELS = 30
FINE_WEIGHT = 0.6  # weight of the finer-scale noise in a lesion's outline (lobulation on two scales)


@dataclass(frozen=True)
class Lesion:
    """One lesion in target voxel coordinates (1 mm voxels)."""

    family: str  # "tumour" | "stroke" | "wmh" (small white-matter hyperintensity, MS-like)
    centre: np.ndarray
    rotation: np.ndarray  # rows: the lesion's principal axes
    axes: np.ndarray  # semi-axes (mm) of the whole lesion's ellipsoid
    irregularity: float
    core_frac: float  # tumour: core semi-axes / whole semi-axes
    core_offset: np.ndarray  # tumour: core centre - lesion centre (mm)
    necrosis_frac: float  # tumour: necrosis semi-axes / core semi-axes (0: no necrosis)
    necrosis_offset: np.ndarray  # tumour: necrosis centre - core centre (mm): an enhancing rim of varying thickness
    wm_preference: float  # tumour oedema spreads along white matter
    swelling: float  # mass-effect strength before the config's ``mass_effect`` factor
    noise_seed: int

    def half_extent(self) -> np.ndarray:
        """Half-size (voxels) of a box that surely contains the lesion, per target axis."""
        m = self.rotation.T @ np.diag(self.axes**2) @ self.rotation
        # x 1.05: a tumour's flat-topped envelope reaches 1.048 x ENVELOPE in the ellipsoid metric
        return np.sqrt(np.diag(m)) * ENVELOPE * 1.05 + 2.0

    def box(self, shape: tuple[int, int, int]) -> tuple[slice, slice, slice]:
        h = self.half_extent()
        return tuple(  # type: ignore[return-value]
            slice(max(0, int(np.floor(c - e))), min(n, int(np.ceil(c + e)) + 1))
            for c, e, n in zip(self.centre, h, shape)
        )

    def z_interval(self) -> tuple[float, float]:
        """Nominal z extent (ellipsoid plus the typical outward reach of the shape noise)."""
        m = self.rotation.T @ np.diag(self.axes**2) @ self.rotation
        hz = np.sqrt(m[2, 2]) * (1.0 + 0.5 * self.irregularity)
        return self.centre[2] - hz, self.centre[2] + hz

    def mass_effect(self, factor: float) -> MassEffect:
        strength = min(self.swelling * factor, 0.9)
        return MassEffect(self.centre.copy(), strength, sigma=0.9 * float(np.mean(self.axes)))


def draw_lesion(rng: np.random.Generator, family: str, centre: np.ndarray, radius: float, max_z_mm: float) -> Lesion:
    """Shape parameters of a lesion of equivalent radius ``radius`` (mm) at ``centre``."""
    if family == "tumour":
        axes = radius * rng.uniform(0.8, 1.2, 3) * np.array([1.0, 1.0, rng.uniform(0.55, 0.85)])
        irregularity = rng.uniform(0.15, 0.35)
        core_frac = rng.uniform(0.35, 0.7)
        core_offset = rng.uniform(-0.15, 0.15, 3) * axes
        necrosis_frac = 0.0 if rng.random() < 0.2 else rng.uniform(0.45, 0.8)
        necrosis_offset = rng.uniform(-0.6, 0.6, 3) * (1.0 - necrosis_frac) * core_frac * axes
        wm_preference = rng.uniform(0.4, 1.0)
        swelling = rng.uniform(0.15, 0.4) * min(1.0, radius / 25.0)
    else:
        axes = radius * (rng.uniform(0.6, 1.4, 3) if family == "stroke" else rng.uniform(0.7, 1.3, 3))
        irregularity = rng.uniform(0.2, 0.45) if family == "stroke" else rng.uniform(0.1, 0.25)
        core_frac, core_offset, necrosis_frac, wm_preference = 0.0, np.zeros(3), 0.0, 0.0
        necrosis_offset = np.zeros(3)
        swelling = rng.uniform(0.0, 0.1) if family == "stroke" else 0.0
    axes[2] = min(axes[2], max_z_mm)
    tilt = np.deg2rad(rng.uniform(-15, 15, 2))
    rotation = rotation_matrix(tilt[0], tilt[1], rng.uniform(0, 2 * np.pi))
    return Lesion(
        family,
        np.asarray(centre, float),
        rotation,
        axes,
        float(irregularity),
        float(core_frac),
        core_offset,
        float(necrosis_frac),
        necrosis_offset,
        float(wm_preference),
        float(swelling),
        int(rng.integers(2**31)),
    )


def smooth_noise(seed: int, box: tuple[slice, slice, slice], spacing: float, channels: int) -> np.ndarray:
    """``channels`` unit-variance smooth random fields on ``box`` (correlation length ~ 2 spacings)."""
    shape = tuple(s.stop - s.start for s in box)
    nodes = tuple(int(np.ceil(n / spacing)) + 4 for n in shape)
    rng = np.random.default_rng(seed)
    grid = ndi.gaussian_filter(rng.standard_normal((channels, *nodes)), sigma=(0, 1.0, 1.0, 1.0), mode="wrap")
    grid /= grid.std(axis=(1, 2, 3), keepdims=True)
    if spacing > 3.0:  # refine x2 with cubic splines (small arrays) so that outlines stay smooth
        grid = np.stack([ndi.zoom(g, 2.0, order=3, mode="grid-wrap", grid_mode=True) for g in grid])
        pos = [(np.arange(n) + 0.5) / spacing * 2.0 + 3.0 for n in shape]
    else:
        pos = [(np.arange(n) + 0.5) / spacing + 1.5 for n in shape]
    out = np.stack([interp_separable(g.astype(np.float32), pos) for g in grid])
    return np.clip(out, -NOISE_CLIP, NOISE_CLIP)


def _radius(
    lesion: Lesion, box: tuple[slice, ...], centre: np.ndarray, scale: float, flat_top: bool = False
) -> np.ndarray:
    """Ellipsoid-metric distance from ``centre`` with semi-axes ``scale * lesion.axes``.

    ``flat_top``: the third (near-axial) axis enters to the 4th power (a superellipsoid), so that
    axial cross-sections stay large until close to the lesion's upper and lower ends.
    """
    grids = [np.arange(s.start, s.stop, dtype=np.float32) - np.float32(c) for s, c in zip(box, centre)]
    x, y, z = grids[0][:, None, None], grids[1][None, :, None], grids[2][None, None, :]
    r2 = np.zeros((len(grids[0]), len(grids[1]), len(grids[2])), np.float32)
    for k in range(3):
        rk = lesion.rotation[k]
        u = (np.float32(rk[0]) * x + np.float32(rk[1]) * y + np.float32(rk[2]) * z) / np.float32(scale * lesion.axes[k])
        r2 += u**4 if (flat_top and k == 2) else u**2
    return np.sqrt(r2)


def rasterise(lesion: Lesion, anatomy: AnatomyBox) -> np.ndarray:
    """Internal class volume (uint8) of one lesion on ``anatomy.box``."""
    box = anatomy.box
    spacing = max(2.0, float(np.mean(lesion.axes)) / 2.5)
    noise = smooth_noise(lesion.noise_seed, box, spacing, channels=3 if lesion.family == "tumour" else 1)
    fine = smooth_noise(lesion.noise_seed + 1, box, max(1.5, spacing / 2.5), channels=1)[0]
    outline = np.clip((noise[0] + FINE_WEIGHT * fine) / np.sqrt(1.0 + FINE_WEIGHT**2), -NOISE_CLIP, NOISE_CLIP)
    parenchyma = anatomy.brain & (anatomy.csf < 0.5)
    radius = _radius(lesion, box, lesion.centre, 1.0, flat_top=lesion.family == "tumour")
    taper = np.clip((ENVELOPE - radius) / TAPER, 0.0, 1.0)
    field = 1.0 - radius + lesion.irregularity * outline * taper
    if lesion.family != "tumour":  # stroke and small white-matter lesions: one compartment
        whole = _largest_component((field > 0) & parenchyma)
        return whole.astype(np.uint8) * STROKE
    field += lesion.wm_preference * (anatomy.wm - 0.5)
    core_centre = lesion.centre + lesion.core_offset
    core_irr = 0.6 * lesion.irregularity
    core = 1.0 - _radius(lesion, box, core_centre, lesion.core_frac) + core_irr * noise[1] > 0
    core &= anatomy.brain
    whole = _largest_component(((field > 0) & parenchyma) | core)
    core &= whole
    out = np.where(whole, OEDEMA, 0).astype(np.uint8)
    out[core] = ENHANCING
    if lesion.necrosis_frac > 0:
        nec_scale = lesion.core_frac * lesion.necrosis_frac
        nec_centre = core_centre + lesion.necrosis_offset
        necrosis = 1.0 - _radius(lesion, box, nec_centre, nec_scale) + core_irr * noise[2] > 0
        out[necrosis & core] = NECROSIS
    return out


def _largest_component(mask: np.ndarray) -> np.ndarray:
    labels, n = ndi.label(mask)
    if n <= 1:
        return mask
    sizes = np.bincount(labels.ravel())
    sizes[0] = 0
    return labels == int(np.argmax(sizes))


def merge(classes: np.ndarray, box: tuple[slice, ...], patch: np.ndarray) -> None:
    """Write a lesion's classes into the subject's class volume (higher :data:`PRIORITY` wins)."""
    current = classes[box]
    take = PRIORITY[patch] > PRIORITY[current]
    current[take] = patch[take]
