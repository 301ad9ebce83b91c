"""Typed configuration of one dataset: where it lives, its layout and its pre-processing."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

from datasets.errors import DatasetError

Layout = Literal["brats", "brats2023", "atlas", "isles"]
OrientationMode = Literal["reorient", "error"]
LoadPool = Literal["thread", "process"]
LabelMap = tuple[tuple[int, int], ...]
"""``DatasetConfig.label_map``: (raw value, new value) pairs, any order (a dict would make the frozen config
unhashable)."""
SPLIT_FILE_FORMAT = '{"train": [...], "val": [...], "test": [...]} of subject ids'


@dataclass(frozen=True)
class DatasetConfig:
    """Everything that decides which slices a method sees (protocol.md §1–2).

    Attributes:
        layout: on-disk layout / loader: ``brats`` (BraTS 2021), ``brats2023`` (BraTS 2023/2024 naming,
            GLI / MET / MEN / PED / SSA), ``atlas`` (ATLAS v2.0),
            ``isles`` (ISLES 2015 SISS).
        root: dataset directory given by the user (or written by the synthetic generator). Not in
            :meth:`preprocess_hash`: results, checkpoints and caches follow the data, not its path.
        modalities: channels to load, lower case; the first one defines the brain mask (> 0).
        image_size: slices are resized to ``image_size x image_size`` with area averaging.
        slice_range: axial indices ``[start, stop)`` of the raw array considered.
        test_slices: ``largest`` = per test subject the slice of largest lesion area (paper);
            ``all`` = every lesion slice of a test subject in the range (per-volume evaluation).
        eval_slice_step: keep every k-th selected slice of a val / test subject (1 = all). Adjacent raw slices
            are nearly identical after resizing, so a step of 2 halves the cost of evaluating slow methods
            (the diffusion baselines spend 0.25-0.6 s per slice on a CPU) with little loss; train keeps every slice.
        binarize_brain: re-binarise the resized brain mask (> 0.5); official code keeps it soft.
        split_file: JSON ``{"train": [...], "val": [...], "test": [...]}`` of subject ids;
            without it a deterministic split with ``split_fractions`` and ``split_seed``.
        cache_dir: where pre-processed slices are cached (one file per split and config hash).
        max_subjects: use only the first N subjects in sorted order (quick runs); None = all.
        test_only_subjects: ids always assigned to test and left out of the seeded split (or required to be
            in no other split of a split file): e.g. healthy control subjects, such as the built-in synthetic
            set's lesion-free subjects, that the whole-volume evaluation scores for false positives.
        orientation: a volume whose voxel axes are not in the release's orientation (e.g. a copy reoriented to
            RAS): ``reorient`` it on loading (flips and axis swaps, no resampling) or stop with an ``error``
            (:mod:`datasets.orientation`). Not in :meth:`preprocess_hash`: slices come out the same either way.
        label_map: (raw label value, new value) pairs applied to every label volume before its values are
            checked, e.g. ``((4, 1),)``; the new values are the layout's (0 = background). None = as on disk.
        load_workers: subjects read and pre-processed concurrently when the cache is built (1 = one after the
            other in the calling thread); None = the CPUs this process may use, at most 8.
        load_pool: run them in ``thread`` s (the default: NIfTI inflation and numpy release the GIL; measured
            faster, README) or in spawned ``process`` es. Neither of the two load fields is in :meth:`preprocess_hash`:
            the slices are byte-identical whatever they are.
    """

    layout: Layout
    root: Path
    modalities: tuple[str, ...]
    image_size: int = 128
    slice_range: tuple[int, int] = (70, 90)
    test_slices: Literal["largest", "all"] = "largest"
    eval_slice_step: int = 1
    binarize_brain: bool = False
    split_file: Path | None = None
    split_fractions: tuple[float, float, float] = (0.79, 0.10, 0.11)
    split_seed: int = 0
    cache_dir: Path | None = None
    max_subjects: int | None = None
    test_only_subjects: tuple[str, ...] = ()
    orientation: OrientationMode = "reorient"
    label_map: LabelMap | None = None
    load_workers: int | None = None
    load_pool: LoadPool = "thread"
    name: str = field(default="")  # display name; defaults to the layout

    @property
    def display_name(self) -> str:
        return self.name or self.layout

    def preprocess_hash(self) -> str:
        """Short hash of every field that changes the pre-processed slices (no path: not the data root, not caches).

        Where the data lives is not part of it, so the same release at two paths (another machine, a moved
        folder, a per-job copy on a cluster node's scratch disk) gives the same hash, slice cache names and,
        with the same content (:func:`datasets.cache.content_hash`), the same cell keys. A split file enters by
        its content (the subject ids of each split), not its path. ``eval_slice_step`` enters only when it thins
        the splits (> 1), ``test_only_subjects`` only when it names a subject and ``label_map`` only when set.

        Raises:
            DatasetError: ``split_file`` cannot be read as ``{"train": [...], "val": [...], "test": [...]}``.
        """
        payload = asdict(self)
        for unused in ("root", "cache_dir", "name", "orientation", "load_workers", "load_pool"):
            payload.pop(unused)
        if self.eval_slice_step == 1:
            payload.pop("eval_slice_step")
        if not self.test_only_subjects:
            payload.pop("test_only_subjects")
        if self.label_map:
            payload["label_map"] = sorted(([str(raw), str(new)] for raw, new in self.label_map))
        else:
            payload.pop("label_map")
        payload["split_file"] = split_file_content(Path(self.split_file)) if self.split_file else None
        blob = json.dumps(payload, sort_keys=True, default=str).encode()
        return hashlib.sha256(blob).hexdigest()[:12]


def load_split_json(path: Path) -> object:
    """A split file's parsed JSON; :class:`DatasetError` naming the file when it is missing or not JSON."""
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise DatasetError(f"split file {path} does not exist; expected a JSON file {SPLIT_FILE_FORMAT}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise DatasetError(f"split file {path} is not valid JSON ({error}); expected {SPLIT_FILE_FORMAT}") from None


def split_file_content(path: Path) -> dict[str, list[str]]:
    """A split file's subject ids per split, each list sorted (what :meth:`DatasetConfig.preprocess_hash` hashes:
    reformatting or reordering the file keeps the hash). ``datasets.splits.read_split_file`` checks the rest."""
    data = load_split_json(path)
    if not isinstance(data, dict) or not all(isinstance(ids, list) for ids in data.values()):
        raise DatasetError(f"split file {path} is not a mapping of id lists; expected {SPLIT_FILE_FORMAT}")
    return {str(name): sorted(map(str, ids)) for name, ids in data.items()}
