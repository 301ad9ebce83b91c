"""Label volumes against their layout's label set: the ``dataset.label_map`` override (raw label value ->
value of the layout's set, e.g. ``{4: 1}``, or ``{1: 1, 2: 0, 4: 1}`` for BraTS "enhancing + necrosis only")
and the error for values outside the set, which names the release the values look like and offers the map."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from datasets.errors import DatasetError
from datasets.layouts import Layout, label_scheme_hint


def _is_int(value: object) -> bool:
    return isinstance(value, int | np.integer) and not isinstance(value, bool)


def check_label_map(label_map: Sequence[object] | None, layout: Layout) -> dict[int, int]:
    """``dataset.label_map`` (``DatasetConfig.label_map`` pairs) as ``{raw value: new value}``, empty when unset;
    checked, since it comes from the user's config: integer raw values, each once, mapped to values of the
    layout's label set."""
    allowed = sorted(layout.label_values)
    mapping: dict[int, int] = {}
    for pair in label_map or ():
        if not (isinstance(pair, tuple | list) and len(pair) == 2):
            raise DatasetError(f"dataset.label_map: entry {pair!r}; expected (raw value, new value) pairs")
        raw, new = pair
        if not _is_int(raw):
            raise DatasetError(
                f"dataset.label_map: key {raw!r} is not an integer; expected {{raw label value: new value}}, "
                "e.g. 'dataset.label_map={4: 1}'"
            )
        if not (_is_int(new) and new in layout.label_values):
            raise DatasetError(
                f"dataset.label_map: {raw}: {new!r}; expected a value of the {layout.title} label set {allowed} "
                "(0 = background, any other = lesion)"
            )
        if int(raw) in mapping:
            raise DatasetError(f"dataset.label_map: raw value {raw} given twice; expected each raw value once")
        mapping[int(raw)] = int(new)
    return mapping


def apply_label_map(label: np.ndarray, mapping: dict[int, int]) -> np.ndarray:
    """``label`` with every raw value of ``mapping`` replaced at once (``{1: 2, 2: 0}`` does not chain);
    the same array when the map is empty."""
    if not mapping:
        return label
    out = label.copy()
    for raw, new in mapping.items():
        out[label == raw] = new
    return out


def check_label_values(label: np.ndarray, path: Path, layout: Layout, mapped: bool) -> None:
    """Stop unless every value of ``label`` is in the layout's set; the message names the release the values
    look like and offers ``dataset.label_map`` (``mapped``: the map was applied already)."""
    allowed = layout.label_values
    valid = np.isin(label, np.array(sorted(allowed), dtype=label.dtype))
    if valid.all():
        return
    bad = np.unique(label[~valid])[:5].tolist()
    values = np.unique(label)
    where = " after dataset.label_map" if mapped else ""
    message = f"{path}: label values {bad}{where} outside the {layout.title} label set {sorted(allowed)}"
    if not np.all(values == np.round(values)):  # not a label volume: no scheme to name, nothing to map
        raise DatasetError(message)
    hint = label_scheme_hint({int(v) for v in values}, layout)
    offer = ", ".join(f"{int(v)}: 1" for v in bad)
    raise DatasetError(
        message + (f" ({hint})" if hint else "") + f"; to keep this layout, map them with dataset.label_map, "
        f"e.g. 'dataset.label_map={{{offer}}}' (raw value: value of the label set)"
    )
