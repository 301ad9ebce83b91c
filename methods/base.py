"""The one interface every anomaly-segmentation method implements, and the explicit registry.

``benchmark/`` knows methods only through :class:`AnomalyMethod` and :func:`create_method`; it never
branches on a method's name. A new method is one module here (decorated with :func:`register`) and one
file in ``configs/method/``.
"""

from __future__ import annotations

import inspect
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

import torch

from datasets.slices import SliceSet, Splits

if TYPE_CHECKING:
    from methods.measure import Timer

#: ``on_log(record)``: called with each training record as it is produced (``step``, ``train_loss``, ``val_loss``), so
#: that the caller can show or write the curves live; the method layer does not know where they go.
TrainRecordSink = Callable[[Mapping[str, float]], None]

#: ``score(maps [N, H, W], slices) -> {"dice": oracle-global mean Dice, "auroc": pixel AUROC}``: the standard map
#: scores, given to :meth:`AnomalyMethod.diagnose` by the caller (methods do not import the benchmark's metrics).
MapScorer = Callable[[torch.Tensor, SliceSet], dict[str, float]]


@dataclass(frozen=True)
class MethodOutput:
    """What ``predict`` returns for a batch of B slices.

    Attributes:
        anomaly_map: float ``[B, H, W]``, higher = more anomalous; only brain pixels are scored.
        reconstruction: float ``[B, H, W]`` pseudo-healthy image (for SSIM and figures), or None.
        final_mask: ``[B, H, W]`` a method's own final binary mask (IterMask²), or None.
        nfe: int64 ``[B]`` network evaluations spent on each slice.
    """

    anomaly_map: torch.Tensor
    reconstruction: torch.Tensor | None
    nfe: torch.Tensor
    final_mask: torch.Tensor | None = None


@dataclass(frozen=True)
class TrainBudget:
    """How long and how a method trains (from ``configs/method/*.yaml`` → ``train``).

    Attributes:
        steps: optimiser steps at most.
        batch_size: slices per step.
        lr: learning rate.
        weight_decay: optimiser weight decay.
        val_every: steps between validation-loss evaluations (early stopping, logs).
        patience: stop after this many validations without improvement; None = never stop early.
    """

    steps: int
    batch_size: int
    lr: float
    weight_decay: float = 0.0
    val_every: int = 100
    patience: int | None = None


@dataclass(frozen=True)
class MethodContext:
    """What a method needs to know about the cell it runs in (not its own hyper-parameters)."""

    modality: str  # input modality, e.g. "flair"
    image_size: int
    device: torch.device
    seed: int
    available_modalities: tuple[str, ...] = ()
    progress: bool = False  # show training progress bars (the run's ``progress`` flag)
    on_log: TrainRecordSink | None = None  # receives every TrainLog.history record live (the run's ``logger``)


@dataclass
class TrainLog:
    """What happened during ``fit``: recorded in the checkpoint, the result row and the report.

    ``history``: one record per validation interval (``step``, ``train_loss``, ``val_loss``; a method may add
    entries to the last one, e.g. IterMask²'s per-network validation losses).
    """

    steps: int = 0
    seconds: float = 0.0
    final_train_loss: float = float("nan")
    best_val_loss: float = float("nan")
    history: list[dict[str, float]] = field(default_factory=list)


class MethodUnavailable(RuntimeError):
    """Raised when a method is undefined for a dataset (e.g. Cyclic-UNet on single-modality data).

    The runner records the cell as not applicable ("–" in tables) instead of failing the run.
    """


class AnomalyMethod(ABC):
    """Base class of every method. Subclasses set ``name`` via :func:`register`.

    Lifecycle: ``fit(train, val, budget)`` on healthy slices → ``calibrate(val)`` (no test data)
    → ``predict(batch)`` any number of times. ``state_dict``/``load_state_dict`` round-trip
    everything ``fit`` and ``calibrate`` produce, so a saved method predicts identically.
    """

    name: ClassVar[str] = ""
    #: Row label in tables (the paper's name, e.g. "AE"); defaults to ``name``.
    label: ClassVar[str] = ""
    #: Deviations from the reference implementation, shown in the report's method notes.
    deviations: ClassVar[tuple[str, ...]] = ()
    #: Whether ``fit`` trains anything (a training-free method may run with a budget of 0 steps).
    trains: ClassVar[bool] = True

    def __init__(self, context: MethodContext, **params: Any) -> None:
        if params:
            raise UnknownParameterError(
                type(self).name or type(self).__name__, sorted(params), accepted_params(type(self))
            )
        self.context = context

    @property
    def device(self) -> torch.device:
        return self.context.device

    @property
    def display_name(self) -> str:
        """The method's name in messages and progress bars (its class :meth:`row_label`)."""
        return self.row_label()

    @classmethod
    def row_label(cls) -> str:
        """The class's default row label: ``label``, else ``name``. A configuration's own row label is the
        ``label`` field of its config (``MethodSpec.row_label``), e.g. ``DAE [0,+inf]``."""
        return cls.label or cls.name

    @abstractmethod
    def fit(self, train: SliceSet, val: SliceSet, budget: TrainBudget) -> TrainLog:
        """Train on healthy slices only."""

    def calibrate(self, val: SliceSet) -> None:  # noqa: B027  (optional hook: the default does nothing)
        """Set data-dependent constants on healthy validation slices (default: nothing)."""

    @abstractmethod
    def predict(self, batch: SliceSet) -> MethodOutput:
        """Anomaly maps for a batch of slices (no labels are read)."""

    @abstractmethod
    def state_dict(self) -> dict[str, Any]:
        """Everything needed to predict again without training."""

    @abstractmethod
    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Inverse of :meth:`state_dict`."""

    def training_identity(self) -> dict[str, Any] | None:
        """What determines the state ``fit`` produces, when it is less than the whole method config.

        Cells whose identities (and training budgets, data and seed) agree share one saved checkpoint:
        e.g. AutoDDPM reuses DDPM's trained network, and a sweep over an inference-only parameter
        trains once. ``None`` (default) means the whole method config is the identity.
        """
        return None

    def reset_inference_stats(self) -> None:  # noqa: B027  (optional hook: the default does nothing)
        """Zero the counters behind :meth:`inference_stats` (the runner calls it before predicting the test
        split). Default: nothing to reset."""

    def inference_stats(self) -> dict[str, float]:
        """Method-specific inference counters since :meth:`reset_inference_stats` (e.g. images stopped by an
        iteration cap), merged into every result row of the cell. Default: none."""
        return {}

    def human_ai_segmentation(self, test: SliceSet) -> torch.Tensor | None:
        """An ORACLE binary segmentation ``[N, H, W]`` of ``test`` chosen with its labels (the paper's
        "human–AI" grey rows), or None when the method has no such mode (default). The runner evaluates it
        as protocol ``human_ai`` and marks the row as an oracle."""
        return None

    def diagnostic_figures(self, slices: SliceSet, out_dir: Path) -> list[Path]:
        """Write method-specific figures of a few (lesion-bearing) ``slices`` under ``out_dir`` and return
        their paths (the report links them). Default: none."""
        return []

    def diagnose(
        self, val: SliceSet, test: SliceSet, batch_size: int, score_maps: MapScorer | None = None
    ) -> dict[str, Any] | None:
        """A method-specific diagnosis of the trained, calibrated method on healthy ``val`` and labelled ``test``
        slices: a JSON-able record with a ``markdown`` entry (a section body that ``python -m
        benchmark.diagnose`` prints and writes), or None when the method has none (default). ``score_maps``
        (optional) scores anomaly maps with the benchmark's standard scores."""
        return None

    def cost_studies(
        self,
        splits: Splits,
        batch_size: int,
        train_step_ms: float,
        timer: Timer,
        *,
        train_batch_size: int | None = None,
    ) -> list[dict[str, Any]]:
        """Method-specific cost measurements of the trained method (``python -m benchmark experiment=timing``):
        result rows, each with a ``record`` name (one cost-report section per name) and a ``title`` (its
        heading). ``batch_size``: slices per timed predict batch; ``train_step_ms``: the measured train step at
        ``train_batch_size`` slices; ``timer``: the harness's timer (its repeats / warm-up). Default: none."""
        return []

    def parameter_count(self) -> int:
        """Trainable parameters of all networks (for the cost table)."""
        return sum(p.numel() for module in self.networks() for p in module.parameters() if p.requires_grad)

    def networks(self) -> list[torch.nn.Module]:
        """The torch modules of the method (default: none)."""
        return []


class UnknownParameterError(TypeError):
    """A method config names a parameter that the method's constructor does not take (e.g. a typo)."""

    def __init__(self, method: str, unknown: list[str], accepted: list[str]) -> None:
        self.method, self.unknown, self.accepted = method, unknown, accepted
        super().__init__(
            f"method {method!r}: unknown parameter(s) {', '.join(unknown)}; accepted: {', '.join(accepted)}"
        )


def accepted_params(cls: type[AnomalyMethod]) -> list[str]:
    """The keyword parameters a method's constructor chain accepts (from the signatures, sorted).

    Subclasses forward ``**params`` to their parents, so the names of every ``__init__`` in the MRO count;
    ``context`` is the runner's, not a config parameter.
    """
    names: set[str] = set()
    for klass in cls.__mro__:
        init = klass.__dict__.get("__init__")
        if init is None or klass is object:
            continue
        for parameter in inspect.signature(init).parameters.values():
            if parameter.kind in (parameter.POSITIONAL_OR_KEYWORD, parameter.KEYWORD_ONLY):
                names.add(parameter.name)
    return sorted(names - {"self", "context"})


def check_params(name: str, params: Mapping[str, Any]) -> None:
    """Raise :class:`UnknownParameterError` when ``params`` holds a name method ``name`` does not accept."""
    accepted = accepted_params(method_class(name))
    unknown = sorted(set(params) - set(accepted))
    if unknown:
        raise UnknownParameterError(name, unknown, accepted)


MethodT = TypeVar("MethodT", bound=type[AnomalyMethod])
_REGISTRY: dict[str, type[AnomalyMethod]] = {}


def register(name: str) -> Callable[[MethodT], MethodT]:
    """Class decorator: make a method available under ``name`` (explicit, no subclass scan)."""

    def decorate(cls: MethodT) -> MethodT:
        if name in _REGISTRY and _REGISTRY[name] is not cls:
            raise ValueError(f"method name {name!r} registered twice ({_REGISTRY[name]} and {cls})")
        cls.name = name
        _REGISTRY[name] = cls
        return cls

    return decorate


def registered_methods() -> dict[str, type[AnomalyMethod]]:
    """A copy of the registry: name → class."""
    return dict(_REGISTRY)


def method_class(name: str) -> type[AnomalyMethod]:
    """The class registered under ``name``; unknown names fail with the list of known ones."""
    try:
        return _REGISTRY[name]
    except KeyError:
        known = ", ".join(sorted(_REGISTRY)) or "(none)"
        raise KeyError(f"unknown method {name!r}; registered methods: {known}") from None


def create_method(name: str, context: MethodContext, **params: Any) -> AnomalyMethod:
    """Instantiate a registered method; unknown names and unknown parameters fail with what is accepted."""
    check_params(name, params)
    return method_class(name)(context, **params)
