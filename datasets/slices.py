"""The in-memory unit every method and metric works on: a set of pre-processed axial slices."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class SliceSet:
    """Pre-processed 2-D axial slices of one slice set (train / val / val_labelled / test) of one dataset.

    All modalities of a subject are kept (in ``modalities`` order) so that methods that need
    paired contrasts (Cyclic-UNet) see them; a method reads its input with :meth:`channel`.

    Attributes:
        images: float32 ``[N, C, H, W]``, normalised (BraTS: background -3, brain p90 = +3).
        brain: float32 ``[N, H, W]`` brain mask in [0, 1] (soft after area resizing unless the
            pre-processing config binarises it).
        labels: bool ``[N, H, W]`` lesion masks; all False for the healthy train/val sets.
        modalities: channel names, lower case (``"flair"``, ``"t1"``, ``"t1ce"``, ``"t2"``).
        subjects: subject id of every slice.
        slice_index: axial index z of every slice in the raw volume.
    """

    images: torch.Tensor
    brain: torch.Tensor
    labels: torch.Tensor
    modalities: tuple[str, ...]
    subjects: tuple[str, ...]
    slice_index: tuple[int, ...]

    def __post_init__(self) -> None:
        n, c, h, w = self.images.shape
        if c != len(self.modalities):
            raise ValueError(f"SliceSet: {c} image channels but modalities={self.modalities}")
        if self.brain.shape != (n, h, w) or self.labels.shape != (n, h, w):
            raise ValueError(
                f"SliceSet: images {tuple(self.images.shape)} vs brain {tuple(self.brain.shape)} "
                f"vs labels {tuple(self.labels.shape)}: expected [N,H,W] matching [N,C,H,W]"
            )
        if len(self.subjects) != n or len(self.slice_index) != n:
            raise ValueError(f"SliceSet: {n} slices but {len(self.subjects)} subject ids")

    def __len__(self) -> int:
        return self.images.shape[0]

    @property
    def image_size(self) -> tuple[int, int]:
        return tuple(self.images.shape[-2:])  # type: ignore[return-value]

    def channel(self, modality: str) -> torch.Tensor:
        """The ``[N, H, W]`` images of one modality; a clear error if it is not loaded."""
        if modality not in self.modalities:
            raise KeyError(f"modality {modality!r} not in this SliceSet (has {self.modalities})")
        return self.images[:, self.modalities.index(modality)]

    def subset(self, index: Sequence[int] | torch.Tensor | slice) -> SliceSet:
        """The slices at ``index`` (a slice, a list of positions or a boolean tensor)."""
        if isinstance(index, torch.Tensor) and index.dtype == torch.bool:
            index = torch.nonzero(index).flatten()
        if isinstance(index, slice):
            positions = list(range(len(self)))[index]
        else:
            positions = [int(i) for i in index]
        idx = torch.as_tensor(positions, dtype=torch.long)
        return SliceSet(
            images=self.images[idx],
            brain=self.brain[idx],
            labels=self.labels[idx],
            modalities=self.modalities,
            subjects=tuple(self.subjects[i] for i in positions),
            slice_index=tuple(self.slice_index[i] for i in positions),
        )

    def batches(self, batch_size: int) -> Iterator[SliceSet]:
        """Consecutive batches in order (the last one may be smaller)."""
        for start in range(0, len(self), batch_size):
            yield self.subset(slice(start, start + batch_size))

    def to(self, device: torch.device | str) -> SliceSet:
        return SliceSet(
            images=self.images.to(device),
            brain=self.brain.to(device),
            labels=self.labels.to(device),
            modalities=self.modalities,
            subjects=self.subjects,
            slice_index=self.slice_index,
        )


@dataclass(frozen=True)
class Splits:
    """The slice sets of one dataset: healthy train, healthy val, lesion test slices, the lesion slices of the
    validation subjects (``val_labelled``, for the ``val_labelled`` threshold protocol) and the whole test slab.

    Attributes:
        test: the paper protocol's lesion slices of the test subjects (``test_slices: largest | all``): a view
            of ``test_slab`` when the loader built one.
        test_slab: every test subject's slab (every ``eval_slice_step``-th brain slice of the slice range, lesion
            and lesion-free, healthy test subjects included), contiguous per subject in increasing z: the
            whole-volume evaluation's test set. None for hand-made splits without one.
        test_view: positions of ``test``'s slices in ``test_slab`` (``test == test_slab.subset(test_view)``).
        val_labelled: the validation subjects' lesion slices, selected like the test split's (same
            ``test_slices`` rule and ``eval_slice_step``); None when no validation subject has a lesion
            slice in ``slice_range``. Their lesion-free slices are ``val``.
        data_hash: short SHA-256 of the content of every pre-processed slice set
            (:func:`datasets.cache.content_hash`): the identity of the data a result was computed on, which
            result cells, checkpoints and stored test sets are keyed on by the runner; "" when unknown
            (hand-made splits in tests).
    """

    train: SliceSet
    val: SliceSet
    test: SliceSet
    name: str  # dataset name, e.g. "brats", "synthetic-brats"
    preprocess_hash: str  # hash of the pre-processing config; part of every result row
    val_labelled: SliceSet | None = None
    data_hash: str = ""
    test_slab: SliceSet | None = None
    test_view: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        if (self.test_slab is None) != (self.test_view is None):
            raise ValueError("Splits: test_slab and test_view are given together or not at all")
        if self.test_view is not None and len(self.test_view) != len(self.test):
            raise ValueError(f"Splits: test_view has {len(self.test_view)} positions but test {len(self.test)} slices")
