"""Threshold protocols (protocol.md §4): anomaly maps -> binary masks, the same for every method.

Every protocol returns a :class:`ThresholdResult` whose threshold is in **raw map units**, so that
:func:`binarise` needs nothing but the raw maps. A pixel is predicted when ``map > threshold`` (strict,
as the official code's ``thr < error_map``) and it is a brain pixel (``brain > 0``, see
:mod:`benchmark.metrics`).

Protocols:

* ``oracle_global`` (oracle; what the paper reports): the maps are min–max normalised over the brain
  pixels of the whole test set; one threshold on a grid of normalised values (default 0.00, 0.01, …,
  1.00) maximises the mean per-image Dice on the test set. The first (lowest) best grid value wins ties.
  A best value on the first or last grid point raises :class:`GridEdgeWarning` and sets
  ``at_grid_edge``; :mod:`benchmark.evaluate` then flags the result row ``degenerate`` (the tables mark it,
  ``degenerate_warnings`` words the runner's log message), so the warning is not the only signal.
* ``val_fpr`` (honest, no labels): the ``q``-th percentile (default 99, numpy's linear interpolation) of
  the raw scores on healthy validation brain pixels (val pixels labelled as lesion, if labels are
  given, are left out). The test maps and labels are never read.
* ``val_labelled`` (honest, few labels): the ``oracle_global`` search run on a labelled validation set
  (normalised over *its* brain pixels); the raw threshold is then applied to the test maps, which are
  never read while choosing it.
* ``oracle_per_image`` (oracle; the paper's grey rows for methods other than IterMask²): per image, the
  grid threshold with the best Dice (same normalisation and grid as ``oracle_global``, so its mean Dice
  is never below ``oracle_global``'s). ``per_image`` holds the raw thresholds; ``per_image_score`` the
  best Dice per image.

Grid note: the official IterMask² code searches ``thr / 10000 for thr in range(100)``, i.e. normalised
thresholds 0 … 0.0099 (:data:`OFFICIAL_GRID`), because its squared-error maps normalised by their
maximum put the best threshold far below 0.01. With such maps the default 0.01-step grid lands on its
first point and warns; pass a finer grid (``grid=OFFICIAL_GRID`` or :func:`make_grid`) from the config.

Thresholds are stored rounded to the maps' dtype, so ``binarise`` reproduces exactly the masks that the
search scored.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from benchmark.metrics import as_nhw, brain_region

PROTOCOLS: tuple[str, ...] = ("oracle_global", "val_fpr", "val_labelled", "oracle_per_image")
ORACLE_PROTOCOLS: frozenset[str] = frozenset({"oracle_global", "oracle_per_image"})
DEFAULT_Q = 99.0
_CURVE_PIXELS = 2**23  # pixels per chunk of dice_curve (bounds its int64 buffers to ~64 MiB each)


class GridEdgeWarning(UserWarning):
    """The chosen threshold sits on the first or last point of the search grid."""


def make_grid(start: float = 0.0, stop: float = 1.0, step: float = 0.01) -> torch.Tensor:
    """Normalised thresholds ``start, start + step, …, stop`` (stop included), float64."""
    if step <= 0 or stop < start:
        raise ValueError(f"make_grid: need step > 0 and stop >= start, got {start}, {stop}, {step}")
    n = math.floor((stop - start) / step + 1e-9) + 1
    return torch.round((start + step * torch.arange(n, dtype=torch.float64)) * 1e12) / 1e12


#: The official fine grid of the module docstring's grid note: 0.0000, 0.0001, …, 0.0099.
OFFICIAL_GRID = make_grid(0.0, 0.0099, 0.0001)
#: The default: the official fine grid below 0.01 (squared-error maps concentrate near 0 after min–max
#: normalisation) followed by 0.010, 0.015, …, 1.000 (absolute-error maps); 299 points.
DEFAULT_GRID = torch.cat([OFFICIAL_GRID, make_grid(0.01, 1.0, 0.005)])


@dataclass(frozen=True)
class ThresholdResult:
    """A chosen threshold and how it was chosen.

    Attributes:
        protocol: one of :data:`PROTOCOLS`.
        threshold: raw map units (``map > threshold`` is positive); NaN for ``oracle_per_image``.
        threshold_norm: the same in normalised units ``(t - norm_min) / (norm_max - norm_min)`` (the grid
            value for grid protocols); NaN for ``oracle_per_image``.
        norm_min, norm_max: min and max of the maps over the brain pixels of the set the threshold was
            chosen on (test for oracles, validation otherwise).
        is_oracle: the threshold used test labels.
        at_grid_edge: the chosen grid value is the first or last grid point (global protocols);
            for ``oracle_per_image``: at least one image's best is at an edge.
        n_at_grid_edge: images whose best grid value is at an edge (``oracle_per_image``), else 0/1.
        objective: mean per-image Dice at the chosen threshold on the set it was chosen on (for
            ``oracle_per_image`` the mean of per-image bests); NaN for ``val_fpr``.
        achieved_fpr: ``val_fpr`` only: fraction of healthy val brain pixels above the threshold.
        q: ``val_fpr`` only: the percentile.
        grid: the normalised grid searched (grid protocols), else None.
        per_image: ``oracle_per_image`` only: raw threshold per test image, float64 CPU ``[N]``.
        per_image_score: ``oracle_per_image`` only: best Dice per test image, float64 CPU ``[N]``.
    """

    protocol: str
    threshold: float
    threshold_norm: float
    norm_min: float
    norm_max: float
    is_oracle: bool
    at_grid_edge: bool = False
    n_at_grid_edge: int = 0
    objective: float = math.nan
    achieved_fpr: float = math.nan
    q: float | None = None
    grid: tuple[float, ...] | None = None
    per_image: torch.Tensor | None = None
    per_image_score: torch.Tensor | None = None

    def record(self) -> dict[str, Any]:
        """Flat fields for a result row (``per_image`` thresholds summarised by their median)."""
        threshold = self.threshold
        if self.per_image is not None and self.per_image.numel():
            threshold = float(self.per_image.median())
        return {
            "protocol": self.protocol,
            "threshold": threshold,
            "threshold_norm": self.threshold_norm,
            "norm_min": self.norm_min,
            "norm_max": self.norm_max,
            "is_oracle": self.is_oracle,
            "at_grid_edge": self.at_grid_edge,
            "n_at_grid_edge": self.n_at_grid_edge,
            "threshold_objective": self.objective,
            "achieved_fpr": self.achieved_fpr,
        }


# --------------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------------
def _maps_region(maps: torch.Tensor, brain: torch.Tensor, name: str) -> tuple[torch.Tensor, torch.Tensor]:
    m = as_nhw(maps, name)
    if not m.dtype.is_floating_point:
        m = m.float()
    region = brain_region(brain).to(m.device)
    if region.shape != m.shape:
        raise ValueError(f"{name}: shape {tuple(m.shape)} but brain mask {tuple(region.shape)}")
    if not bool(region.any()):
        raise ValueError(f"{name}: the brain masks contain no brain pixel (brain > 0)")
    if not bool((torch.isfinite(m) | ~region).all()):
        raise ValueError(f"{name}: anomaly scores on brain pixels contain NaN or inf")
    return m, region


def _labels(labels: torch.Tensor, shape: torch.Size, device: torch.device, name: str) -> torch.Tensor:
    y = as_nhw(labels, name)
    y = (y if y.dtype == torch.bool else y > 0).to(device)
    if y.shape != shape:
        raise ValueError(f"{name}: shape {tuple(y.shape)} does not match the maps {tuple(shape)}")
    return y


def minmax_constants(maps: torch.Tensor, brain: torch.Tensor) -> tuple[float, float]:
    """(min, max) of the maps over all brain pixels (``brain > 0``) of the set."""
    return _minmax(*_maps_region(maps, brain, "maps"))


def _minmax(m: torch.Tensor, region: torch.Tensor) -> tuple[float, float]:
    """(min, max) of ``m`` over ``region`` (non-empty, checked by :func:`_maps_region`), without a copy."""
    lo = torch.where(region, m, torch.inf).amin()
    hi = torch.where(region, m, -torch.inf).amax()
    return float(lo), float(hi)


def _round_to(value: float | torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    return torch.as_tensor(value, dtype=torch.float64).to(dtype)


def _check_grid(grid: Sequence[float] | torch.Tensor | None) -> torch.Tensor:
    g = DEFAULT_GRID if grid is None else torch.as_tensor(grid, dtype=torch.float64).reshape(-1)
    if g.numel() < 2:
        raise ValueError("threshold grid needs at least two values")
    if not bool((torch.diff(g) > 0).all()):
        raise ValueError("threshold grid must be strictly increasing")
    return g


def _raw_thresholds(grid: torch.Tensor, lo: float, hi: float, dtype: torch.dtype) -> torch.Tensor:
    scale = hi - lo if hi > lo else 1.0
    return (lo + grid * scale).to(dtype)


def _to_norm(threshold: float, lo: float, hi: float) -> float:
    scale = hi - lo if hi > lo else 1.0
    return (threshold - lo) / scale


def dice_curve(
    maps: torch.Tensor,
    labels: torch.Tensor,
    brain: torch.Tensor,
    thresholds: torch.Tensor | Sequence[float],
    chunk: int = 256,
) -> torch.Tensor:
    """Per-image Dice of ``(map > t) & brain`` for every raw threshold ``t``: float64 CPU ``[N, G]``.

    ``chunk`` images at a time (fewer when they hold more than ``2**23`` pixels).

    Vectorised without a sort: each brain pixel gets the number of thresholds strictly below its score
    (``searchsorted`` into the sorted thresholds), so it is predicted at exactly the thresholds before that
    index; per image a histogram of those indices (all pixels and label pixels) and a suffix sum give the
    predicted and true-positive counts at every threshold. Same conventions as
    :func:`benchmark.metrics.dice_from_counts` (both empty -> 1; labels outside the brain are FN).
    """
    m, region = _maps_region(maps, brain, "maps")
    return _dice_curve(m, region, _labels(labels, m.shape, m.device, "labels"), thresholds, chunk)


def _dice_curve(
    m: torch.Tensor, region: torch.Tensor, y: torch.Tensor, thresholds: torch.Tensor | Sequence[float], chunk: int
) -> torch.Tensor:
    """:func:`dice_curve` on checked maps, brain region and boolean labels."""
    t = torch.as_tensor(thresholds).reshape(-1).to(m.device, m.dtype)
    t_sorted, t_order = torch.sort(t, stable=True)
    g = t.numel()
    rows = max(1, min(chunk, _CURVE_PIXELS // max(1, m[0].numel()) if m.shape[0] else chunk))
    out = []
    for start in range(0, m.shape[0], rows):
        mm = m[start : start + rows].flatten(1)
        rr = region[start : start + rows].flatten(1)
        yy = y[start : start + rows].flatten(1)
        n = mm.shape[0]
        # pixel index k in 0..g: predicted at sorted threshold j iff j < k; outside the brain never (k = 0)
        k = torch.where(rr, torch.searchsorted(t_sorted, mm, right=False), 0)
        cell = (torch.arange(n, device=m.device)[:, None] * (g + 1) + k).reshape(-1)
        all_hist = torch.bincount(cell, minlength=n * (g + 1)).reshape(n, g + 1)
        lab_hist = torch.bincount(cell[yy.reshape(-1)], minlength=n * (g + 1)).reshape(n, g + 1)
        # predicted at sorted threshold j: pixels with k > j (suffix sums from k = j + 1)
        n_pred = torch.flip(torch.cumsum(torch.flip(all_hist, [1]), 1), [1])[:, 1:].double()
        tp = torch.flip(torch.cumsum(torch.flip(lab_hist, [1]), 1), [1])[:, 1:].double()
        n_lab = yy.sum(1, keepdim=True).double()
        den = n_pred + n_lab
        dice = torch.where(den > 0, 2 * tp / den.clamp(min=1), torch.ones_like(den))
        unsorted = torch.empty_like(dice)
        unsorted[:, t_order] = dice
        out.append(unsorted.cpu())
    return torch.cat(out)


# --------------------------------------------------------------------------------------------------
# protocols
# --------------------------------------------------------------------------------------------------
def _grid_search(
    protocol: str,
    maps: torch.Tensor,
    labels: torch.Tensor,
    brain: torch.Tensor,
    grid: Sequence[float] | torch.Tensor | None,
    warn_edge: bool,
) -> ThresholdResult:
    g = _check_grid(grid)
    m, region = _maps_region(maps, brain, "maps")
    y = _labels(labels, m.shape, m.device, "labels")
    if not bool(y.any()):
        raise ValueError(
            f"{protocol}: the labels contain no lesion pixel, so Dice cannot choose a threshold "
            "(every empty prediction would score 1); it needs a labelled set with lesions"
        )
    lo, hi = _minmax(m, region)
    raw = _raw_thresholds(g, lo, hi, m.dtype)
    curve = _dice_curve(m, region, y, raw, 256)
    mean = curve.mean(0)
    best = int(torch.argmax(mean))  # first maximum = lowest threshold on ties
    at_edge = best in (0, g.numel() - 1)
    if at_edge and warn_edge:
        warnings.warn(
            f"{protocol}: the best threshold is on the edge of the grid (normalised {float(g[best]):g}, "
            f"grid {float(g[0]):g}..{float(g[-1]):g}); widen or refine the grid",
            GridEdgeWarning,
            stacklevel=3,
        )
    return ThresholdResult(
        protocol=protocol,
        threshold=float(raw[best]),
        threshold_norm=float(g[best]),
        norm_min=lo,
        norm_max=hi,
        is_oracle=protocol in ORACLE_PROTOCOLS,
        at_grid_edge=at_edge,
        n_at_grid_edge=int(at_edge),
        objective=float(mean[best]),
        grid=tuple(float(v) for v in g),
    )


def oracle_global(
    test_maps: torch.Tensor,
    test_labels: torch.Tensor,
    brain: torch.Tensor,
    grid: Sequence[float] | torch.Tensor | None = None,
    warn_edge: bool = True,
) -> ThresholdResult:
    """One global threshold maximising mean per-image test Dice (ORACLE: reads test labels)."""
    return _grid_search("oracle_global", test_maps, test_labels, brain, grid, warn_edge)


def val_labelled(
    val_maps: torch.Tensor,
    val_labels: torch.Tensor,
    val_brain: torch.Tensor,
    grid: Sequence[float] | torch.Tensor | None = None,
    warn_edge: bool = True,
) -> ThresholdResult:
    """The threshold maximising mean per-image Dice on a labelled validation set (raw units)."""
    return _grid_search("val_labelled", val_maps, val_labels, val_brain, grid, warn_edge)


def val_fpr(
    val_maps: torch.Tensor,
    val_brain: torch.Tensor,
    q: float = DEFAULT_Q,
    val_labels: torch.Tensor | None = None,
) -> ThresholdResult:
    """The ``q``-th percentile of the scores on healthy validation brain pixels (raw units).

    Linear interpolation between order statistics, as ``numpy.percentile``'s default; lesion pixels are
    left out when ``val_labels`` are given.
    """
    if not 0.0 <= float(q) <= 100.0:
        raise ValueError(f"val_fpr: q must be in [0, 100], got {q}")
    m, region = _maps_region(val_maps, val_brain, "val_maps")
    healthy = region
    if val_labels is not None:
        healthy = region & ~_labels(val_labels, m.shape, m.device, "val_labels")
    values = m[healthy].double()
    if values.numel() == 0:
        raise ValueError("val_fpr: no healthy validation brain pixel")
    n = values.numel()
    position = float(q) / 100.0 * (n - 1)
    below = math.floor(position)
    frac = position - below
    a = torch.kthvalue(values, below + 1).values
    b = torch.kthvalue(values, min(below + 2, n)).values if frac > 0 else a
    threshold = float(_round_to(a + (b - a) * frac, m.dtype))
    lo, hi = float(m[region].min()), float(m[region].max())
    achieved = float((m[healthy] > _round_to(threshold, m.dtype)).double().mean())
    return ThresholdResult(
        protocol="val_fpr",
        threshold=threshold,
        threshold_norm=_to_norm(threshold, lo, hi),
        norm_min=lo,
        norm_max=hi,
        is_oracle=False,
        achieved_fpr=achieved,
        q=float(q),
    )


def oracle_per_image(
    test_maps: torch.Tensor,
    test_labels: torch.Tensor,
    brain: torch.Tensor,
    grid: Sequence[float] | torch.Tensor | None = None,
) -> ThresholdResult:
    """Per image, the grid threshold with the best Dice (ORACLE). Same normalisation and grid as
    :func:`oracle_global`; ties go to the lowest threshold."""
    g = _check_grid(grid)
    m, region = _maps_region(test_maps, brain, "test_maps")
    lo, hi = _minmax(m, region)
    raw = _raw_thresholds(g, lo, hi, m.dtype)
    curve = _dice_curve(m, region, _labels(test_labels, m.shape, m.device, "test_labels"), raw, 256)
    best_score, best = curve.max(1)
    # torch.max does not promise the first index on ties: take the first index reaching the maximum
    best = (curve == best_score[:, None]).double().argmax(1)
    edge = (best == 0) | (best == g.numel() - 1)
    return ThresholdResult(
        protocol="oracle_per_image",
        threshold=math.nan,
        threshold_norm=math.nan,
        norm_min=lo,
        norm_max=hi,
        is_oracle=True,
        at_grid_edge=bool(edge.any()),
        n_at_grid_edge=int(edge.sum()),
        objective=float(best_score.mean()),
        grid=tuple(float(v) for v in g),
        per_image=raw.double().cpu()[best],
        per_image_score=best_score,
    )


def choose_threshold(
    protocol: str,
    test_maps: torch.Tensor | None = None,
    test_labels: torch.Tensor | None = None,
    brain: torch.Tensor | None = None,
    val_maps: torch.Tensor | None = None,
    val_brain: torch.Tensor | None = None,
    val_labels: torch.Tensor | None = None,
    *,
    grid: Sequence[float] | torch.Tensor | None = None,
    q: float = DEFAULT_Q,
    warn_edge: bool = True,
) -> ThresholdResult:
    """Run one threshold protocol by name (the runner's single entry point).

    Args:
        protocol: one of :data:`PROTOCOLS`.
        test_maps, test_labels, brain: the test set (``[N, H, W]``); read only by the oracle protocols.
        val_maps, val_brain, val_labels: the validation set; ``val_fpr`` needs maps and brain (labels
            optional: lesion pixels left out), ``val_labelled`` needs all three.
        grid: normalised grid for the grid protocols (default :data:`DEFAULT_GRID`).
        q: percentile for ``val_fpr``.
        warn_edge: warn (:class:`GridEdgeWarning`) when a global grid search ends on a grid edge.

    Raises:
        ValueError: unknown protocol (the message lists the known ones) or missing data.
    """
    if protocol not in PROTOCOLS:
        raise ValueError(f"unknown threshold protocol {protocol!r}; known protocols: {', '.join(PROTOCOLS)}")

    def need(**given: torch.Tensor | None) -> None:
        missing = [name for name, value in given.items() if value is None]
        if missing:
            raise ValueError(f"threshold protocol {protocol!r} needs {', '.join(missing)} (got None)")

    if protocol == "oracle_global":
        need(test_maps=test_maps, test_labels=test_labels, brain=brain)
        return oracle_global(test_maps, test_labels, brain, grid=grid, warn_edge=warn_edge)  # type: ignore[arg-type]
    if protocol == "oracle_per_image":
        need(test_maps=test_maps, test_labels=test_labels, brain=brain)
        return oracle_per_image(test_maps, test_labels, brain, grid=grid)  # type: ignore[arg-type]
    if protocol == "val_fpr":
        need(val_maps=val_maps, val_brain=val_brain)
        return val_fpr(val_maps, val_brain, q=q, val_labels=val_labels)  # type: ignore[arg-type]
    need(val_maps=val_maps, val_labels=val_labels, val_brain=val_brain)
    return val_labelled(val_maps, val_labels, val_brain, grid=grid, warn_edge=warn_edge)  # type: ignore[arg-type]


def binarise(maps: torch.Tensor, brain: torch.Tensor, result: ThresholdResult) -> torch.Tensor:
    """Boolean masks ``(map > threshold) & (brain > 0)`` (per-image thresholds for ``oracle_per_image``)."""
    m = as_nhw(maps, "maps")
    if not m.dtype.is_floating_point:
        m = m.float()
    region = brain_region(brain).to(m.device)
    if region.shape != m.shape:
        raise ValueError(f"binarise: maps {tuple(m.shape)} but brain {tuple(region.shape)}")
    if result.per_image is not None:
        if result.per_image.numel() != m.shape[0]:
            raise ValueError(
                f"binarise: {result.protocol} has {result.per_image.numel()} per-image thresholds "
                f"but the maps have {m.shape[0]} images"
            )
        thr = result.per_image.to(m.device, m.dtype)[:, None, None]
    else:
        if math.isnan(result.threshold):
            raise ValueError(f"binarise: {result.protocol} result has no threshold")
        thr = _round_to(result.threshold, m.dtype).to(m.device)
    return (m > thr) & region
