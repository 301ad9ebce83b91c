"""Individual fine structure of a synthetic subject's healthy tissue.

The MNI152 tissue maps are an average of 152 brains: their cortex and white-matter borders are blurred and
every subject would share one folding pattern. :class:`TissueVariation` gives each subject its own fine
structure, seeded per subject and defined on the whole target grid, so that its value at a voxel does not
depend on which box is evaluated (the lesion path and the full generator see the same tissue):

* **folding**: random fields at a few millimetres shift the GM-vs-WM and the CSF log-odds, so gyri and sulci
  of the subject wander and widen individually around the template's average folding;
* **sharper borders**: the log-odds are multiplied by ``sharpness`` (a single brain's tissue borders are about
  one voxel wide, partial volume of crisp tissue, not the template's several-voxel blur);
* **within-tissue inhomogeneity**: one multiplicative random field per tissue class (GM, WM, CSF) on two
  scales, shared by the contrasts of the subject (tracts, deep grey nuclei, myelination differences), with a
  per-contrast amplitude (:class:`datasets.synthetic_contrast.Contrast`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi

from datasets.synthetic_anatomy import AnatomyBox, interp_separable

EPS = 1e-3  # floor of a tissue probability before its logarithm
FIELD_CLIP = 3.0  # the random fields are clipped to ± this many standard deviations
COARSE_RATIO = 4.0  # the second (coarse) inhomogeneity scale is this many times the fine one


@dataclass(frozen=True)
class TextureParams:
    """How much individual structure a subject's tissue gets (fields of ``SyntheticConfig``)."""

    sharpness: float  # gain on the tissue log-odds (1: the template's blur)
    folding: float  # std of the GM-vs-WM log-odds shift
    csf_folding: float  # std of the CSF log-odds shift (sulcal width)
    folding_mm: float  # node spacing of the folding field (correlation length about twice this)
    inhomogeneity_mm: float  # node spacing of the fine inhomogeneity field


class GridField:
    """Unit-variance smooth random fields (``channels``) on the node grid of spacing ``spacing`` over a
    target grid; :meth:`on` evaluates them on any box (trilinear between nodes, box-independent)."""

    def __init__(self, rng: np.random.Generator, shape: tuple[int, int, int], spacing: float, channels: int) -> None:
        nodes = tuple(int(np.ceil(n / spacing)) + 3 for n in shape)
        grid = ndi.gaussian_filter(rng.standard_normal((channels, *nodes)), sigma=(0, 1.0, 1.0, 1.0), mode="wrap")
        grid /= grid.std(axis=(1, 2, 3), keepdims=True)
        self.grid = np.clip(grid, -FIELD_CLIP, FIELD_CLIP).astype(np.float32)
        self.spacing = spacing

    def on(self, box: tuple[slice, ...]) -> np.ndarray:
        """The fields on the voxels of ``box``: ``[channels, *box shape]``."""
        pos = [np.arange(s.start, s.stop, dtype=np.float64) / self.spacing + 1.0 for s in box]
        return np.stack([interp_separable(g, pos) for g in self.grid])


@dataclass
class TissueVariation:
    """One subject's folding and inhomogeneity fields (see the module docstring)."""

    params: TextureParams
    folding: GridField  # 2 channels: GM-vs-WM and CSF (sulcal width) log-odds shifts
    fine: GridField  # 3 channels: GM, WM, CSF
    coarse: GridField  # 3 channels

    @staticmethod
    def draw(rng: np.random.Generator, shape: tuple[int, int, int], params: TextureParams) -> TissueVariation:
        return TissueVariation(
            params,
            GridField(rng, shape, params.folding_mm, 2),
            GridField(rng, shape, params.inhomogeneity_mm, 3),
            GridField(rng, shape, params.inhomogeneity_mm * COARSE_RATIO, 3),
        )

    def individual(self, anatomy: AnatomyBox) -> AnatomyBox:
        """``anatomy`` with the subject's folding and sharper borders (brain mask unchanged; GM + WM + CSF
        still sum to 1 inside the brain)."""
        if self.params.sharpness == 1.0 and self.params.folding == self.params.csf_folding == 0.0:
            return anatomy
        shift = (
            self.folding.on(anatomy.box)
            * np.array([self.params.folding, self.params.csf_folding], np.float32)[:, None, None, None]
        )
        gain = np.float32(self.params.sharpness)
        logits = np.stack(
            [
                gain * (np.log(np.maximum(anatomy.gm, EPS)) + shift[0]),
                gain * (np.log(np.maximum(anatomy.wm, EPS)) - shift[0]),
                gain * (np.log(np.maximum(anatomy.csf, EPS)) + shift[1]),
            ]
        )
        logits -= logits.max(axis=0, keepdims=True)
        weights = np.exp(logits)
        weights /= weights.sum(axis=0, keepdims=True)
        inside = anatomy.brain.astype(np.float32)
        return AnatomyBox(anatomy.box, anatomy.brain, weights[0] * inside, weights[1] * inside)

    def modulation(self, box: tuple[slice, ...]) -> np.ndarray:
        """Per-tissue relative intensity variation on ``box``: ``[3 (GM, WM, CSF), *box shape]``, unit
        variance per scale (the fine and the coarse scale summed, divided by sqrt 2)."""
        return (self.fine.on(box) + self.coarse.on(box)) / np.float32(np.sqrt(2.0))
