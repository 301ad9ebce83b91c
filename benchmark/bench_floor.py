"""How close training and inference run to the compute floor: ``python -m benchmark.bench_floor --out FILE.json``.

For each method of the default experiment (one configuration per method name; ``--methods`` picks config keys),
at its configured network, training batch and the run's ``eval_batch_size``, measured in ONE process, side by
side, after warm-up (medians over repeats):

* **throughput**: achieved GFLOP/s of 3x3 convolutions of UNet-like shapes (forward), measured per method just
  before its train steps; the floor uses the best shape.
* **train step**: ms per optimiser step of the method's own ``fit`` (``(fit(1 + k) - fit(1)) / k``, as
  ``experiment=timing``) and its floor ``FLOPs(step) / throughput``, with the step's FLOPs (forward and
  backward) counted by ``torch.utils.flop_counter`` on real fits by the same difference.
* **where the step goes** (CPU): the profiler's self time of the convolution kernels and of everything else per
  step, and the convolutions' own ratio to the floor of their FLOPs (``train_conv_ratio``): how much of the
  step's gap is the kernels themselves (small channel counts run below the best shape's throughput) and how much
  the memory-bound rest.
* **inference**: ms per slice of ``predict`` at the eval batch, after a short fit and ``calibrate``, and its
  bound: every network call that ``predict`` makes, costed at the measured batched forward time of that
  network at the full eval batch (``NFE x batched forward time``; calls on fewer images scale linearly).

The ratios (measured / floor) are the result. The data is the configured dataset (Hydra overrides after the
options, e.g. ``dataset.synthetic.n_subjects=8``); nothing is written but ``--out``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig
from torch.profiler import ProfilerActivity, profile
from torch.utils.flop_counter import FlopCounterMode

import benchmark.hydra_resolvers  # noqa: F401  (registers the resolvers configs/config.yaml uses)
from benchmark.config import MethodSpec, method_specs, resolve_device
from benchmark.config_path import CONFIG_DIR
from benchmark.heap import keep_freed_memory
from benchmark.provenance import device_name, git_commit, seed_everything
from benchmark.runner import prepare_data
from benchmark.timing import TimingOptions, time_train_step
from datasets.slices import SliceSet, Splits
from methods import MethodContext, create_method
from methods.base import AnomalyMethod
from methods.measure import Timer, TimingStats, count_flops

#: 3x3 convolutions (batch, channels, side) of the widths and sides the default nets run at.
CONV_SHAPES: tuple[tuple[int, int, int], ...] = ((8, 64, 64), (8, 16, 64), (8, 32, 32), (16, 64, 16))


def conv_throughput(device: torch.device, timer: Timer, repeats: int) -> dict[str, float]:
    """GFLOP/s of a forward 3x3 conv (channels in = out) per shape of :data:`CONV_SHAPES`."""
    result = {}
    with torch.inference_mode():
        for batch, channels, side in CONV_SHAPES:
            conv = torch.nn.Conv2d(channels, channels, 3, padding=1).to(device)
            conv.to(memory_format=torch.channels_last)  # type: ignore[call-overload]  # stub omits memory_format=
            x = torch.randn(batch, channels, side, side, device=device).contiguous(memory_format=torch.channels_last)
            flops = count_flops(lambda: conv(x))  # noqa: B023  (called at once)
            seconds = timer.repeat(lambda: conv(x), repeats, warmup=2).median  # noqa: B023
            result[f"conv3x3_b{batch}_c{channels}_s{side}"] = flops / seconds / 1e9
    return result


@dataclass(frozen=True)
class StepFlops:
    """FLOPs of one optimiser step (forward and backward): all counted operators and the convolutions among them."""

    total: int
    convolution: int


def is_convolution(op_name: str) -> bool:
    """Whether an operator (``aten.convolution_backward`` of the FLOP counter, ``aten::mkldnn_convolution`` or
    ``aten::_slow_conv2d_forward`` of the profiler) is a convolution kernel."""
    return "conv" in op_name


def convolution_split_us(profiler: profile) -> tuple[float, float]:
    """``(convolution µs, other µs)``: self CPU time of a profile's operators, split by :func:`is_convolution`."""
    conv = other = 0.0
    for event in profiler.key_averages():
        if is_convolution(event.key):
            conv += event.self_cpu_time_total
        else:
            other += event.self_cpu_time_total
    return conv, other


def _fit_steps(make: Callable[[], AnomalyMethod], spec: MethodSpec, splits: Splits, val: SliceSet, steps: int) -> None:
    method = make()
    method.fit(splits.train, val, dataclasses.replace(spec.budget, steps=steps, val_every=steps, patience=None))


def train_step_flops(
    make: Callable[[], AnomalyMethod], spec: MethodSpec, splits: Splits, val: SliceSet, k: int
) -> StepFlops:
    """FLOPs of one optimiser step of ``fit`` on fresh instances: ``(FLOPs(fit(1 + k)) - FLOPs(fit(1))) / k``."""

    def flops(steps: int) -> tuple[int, int]:
        with FlopCounterMode(display=False) as counter:
            _fit_steps(make, spec, splits, val, steps)
        by_op = counter.get_flop_counts().get("Global", {})
        return int(counter.get_total_flops()), sum(int(n) for op, n in by_op.items() if is_convolution(str(op)))

    (long_total, long_conv), (short_total, short_conv) = flops(1 + k), flops(1)
    return StepFlops((long_total - short_total) // k, (long_conv - short_conv) // k)


def train_step_kernel_ms(
    make: Callable[[], AnomalyMethod], spec: MethodSpec, splits: Splits, val: SliceSet, k: int
) -> tuple[float, float]:
    """``(convolution ms, other ms)`` per optimiser step on the CPU: the profiler's self CPU time of the
    convolution kernels and of every other operator, ``(fit(1 + k) - fit(1)) / k``. It says how far the
    convolutions alone are from their floor and what the rest (normalisation, activations, dropout, optimiser,
    Python) costs; the profiler's per-operator overhead inflates the many small operators a little."""

    def kernel_us(steps: int) -> tuple[float, float]:
        with profile(activities=[ProfilerActivity.CPU]) as profiler:
            _fit_steps(make, spec, splits, val, steps)
        return convolution_split_us(profiler)

    (long_conv, long_other), (short_conv, short_other) = kernel_us(1 + k), kernel_us(1)
    return (long_conv - short_conv) / k / 1000, (long_other - short_other) / k / 1000


class CallRecorder:
    """Forward pre-hooks on a method's networks: per call the network and its batch; the first full-batch
    inputs of each network, kept to time that network alone."""

    def __init__(self, networks: Sequence[torch.nn.Module], batch: int) -> None:
        self.batch = batch
        self.calls: list[tuple[int, int]] = []
        self.inputs: dict[int, tuple[tuple[Any, ...], dict[str, Any]]] = {}
        self.handles = [
            net.register_forward_pre_hook(self._hook(i), with_kwargs=True) for i, net in enumerate(networks)
        ]

    def _hook(self, index: int) -> Any:
        def record(_: torch.nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
            n = int(args[0].shape[0])
            self.calls.append((index, n))
            if n == self.batch and index not in self.inputs:
                self.inputs[index] = (tuple(_clone(a) for a in args), {k: _clone(v) for k, v in kwargs.items()})

        return record

    def remove(self) -> None:
        for handle in self.handles:
            handle.remove()


def inference_bound(
    method: AnomalyMethod, batch: SliceSet, timer: Timer, repeats: int
) -> tuple[float, float, dict[int, float]]:
    """``(bound ms per slice, network calls per slice, forward ms of each network at the full batch)``."""
    networks = method.networks()
    recorder = CallRecorder(networks, len(batch))
    try:
        method.predict(batch)
    finally:
        recorder.remove()
    forward_ms: dict[int, float] = {}
    with torch.inference_mode():
        for index, (args, kwargs) in recorder.inputs.items():
            net = networks[index]
            forward_ms[index] = 1000 * timer.repeat(lambda: net(*args, **kwargs), repeats, warmup=2).median  # noqa: B023
    missing = {i for i, _ in recorder.calls} - set(forward_ms)
    if missing:
        raise RuntimeError(f"{method.display_name}: networks {sorted(missing)} never ran on the full eval batch")
    b = len(batch)
    bound_ms = sum(forward_ms[i] * n / b for i, n in recorder.calls)
    return bound_ms / b, sum(n for _, n in recorder.calls) / b, forward_ms


def measure_method(
    spec: MethodSpec,
    context: MethodContext,
    splits: Splits,
    batch: SliceSet,
    timer: Timer,
    args: argparse.Namespace,
) -> dict[str, Any]:
    """One result row: train step vs its FLOP floor, inference vs NFE x batched forward.

    The conv throughput is measured right before this method's train steps, and ``predict`` is timed both
    before and after the forward passes of its bound, so that each ratio compares measurements taken
    close together (the load of a shared machine drifts within minutes).
    """

    def make() -> AnomalyMethod:
        seed_everything(context.seed)
        return create_method(spec.name, context, **spec.params)

    options = TimingOptions(repeats=args.repeats, warmup=1, train_step_repeats=args.repeats, train_step_extra=args.k)
    val = splits.val.subset(slice(0, max(1, min(len(splits.val), spec.budget.batch_size))))
    start = time.perf_counter()
    throughput = conv_throughput(context.device, timer, args.repeats)
    gflops = max(throughput.values())
    step = time_train_step(make, splits, spec.budget, timer, options).scaled(1000.0)
    step_flops = train_step_flops(make, spec, splits, val, args.k)
    floor_ms = step_flops.total / (gflops * 1e9) * 1000
    conv_floor_ms = step_flops.convolution / (gflops * 1e9) * 1000
    conv_ms, other_ms = (
        train_step_kernel_ms(make, spec, splits, val, args.k) if context.device.type == "cpu" else (None, None)
    )
    method = make()
    short = dataclasses.replace(spec.budget, steps=args.infer_train_steps, patience=None)
    method.fit(splits.train, splits.val, short)
    method.calibrate(splits.val)
    first = timer.repeat(lambda: method.predict(batch), args.repeats, warmup=1)
    bound_ms, calls, forward_ms = inference_bound(method, batch, timer, args.repeats)
    second = timer.repeat(lambda: method.predict(batch), args.repeats, warmup=0)
    infer = TimingStats(first.samples + second.samples).scaled(1000.0 / len(batch))
    nfe = float(method.predict(batch).nfe.double().mean())
    return {
        "method_key": spec.key,
        "method": spec.name,
        "conv_gflops_per_s": throughput,
        "floor_gflops_per_s": gflops,
        "train_batch_size": spec.budget.batch_size,
        "train_step_ms": step.median,
        "train_step_ms_iqr": step.iqr,
        "train_step_gflop": step_flops.total / 1e9,
        "train_floor_ms": floor_ms,
        "train_ratio": step.median / floor_ms if floor_ms > 0 else float("nan"),
        "train_conv_gflop": step_flops.convolution / 1e9,
        "train_conv_floor_ms": conv_floor_ms,
        "train_conv_ms_profiled": conv_ms,
        "train_other_ms_profiled": other_ms,
        "train_conv_ratio": conv_ms / conv_floor_ms if conv_ms is not None and conv_floor_ms > 0 else None,
        "eval_batch_size": len(batch),
        "inference_ms_per_slice": infer.median,
        "inference_ms_per_slice_iqr": infer.iqr,
        "nfe_per_slice": nfe,
        "network_calls_per_slice": calls,
        "forward_ms_at_eval_batch": {str(k): v for k, v in forward_ms.items()},
        "inference_bound_ms_per_slice": bound_ms,
        "inference_ratio": infer.median / bound_ms if bound_ms > 0 else float("nan"),
        "seconds": time.perf_counter() - start,
    }


def _clone(value: Any) -> Any:
    return value.clone() if isinstance(value, torch.Tensor) else value


def pick_specs(cfg: DictConfig, keys: Sequence[str] | None) -> list[MethodSpec]:
    """The specs named by ``keys``, else the first configuration of each method name (same cost per name)."""
    specs = method_specs(cfg)
    if keys:
        known = {s.key: s for s in specs}
        unknown = sorted(set(keys) - set(known))
        if unknown:
            raise SystemExit(f"bench_floor: --methods {unknown} not in the experiment's methods {sorted(known)}")
        return [known[k] for k in keys]
    first: dict[str, MethodSpec] = {}
    for spec in specs:
        first.setdefault(spec.name, spec)
    return list(first.values())


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmark.bench_floor", description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="JSON results file")
    parser.add_argument("--methods", nargs="*", help="method config keys (default: one per method name)")
    parser.add_argument("--repeats", type=int, default=5, help="timed repeats (median)")
    parser.add_argument("--k", type=int, default=3, help="extra steps of fit(1 + k) - fit(1)")
    parser.add_argument("--infer-train-steps", type=int, default=50, help="fit before timing inference")
    parser.add_argument("--threads", type=int, help="torch.set_num_threads (default: torch's choice)")
    parser.add_argument("overrides", nargs="*", help="Hydra overrides, e.g. dataset.synthetic.n_subjects=8")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Measure, write ``--out`` and return the results."""
    args = parse_args(argv)
    keep_freed_memory()  # the heap setting of a benchmark run (benchmark.heap), so the steps time what a run does
    if args.threads:
        torch.set_num_threads(args.threads)
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        cfg = compose(config_name="config", overrides=["progress=false", *args.overrides])
    device = resolve_device(cfg.device)
    splits = prepare_data(cfg)
    modality = str(cfg.experiment.modalities[0])
    context = MethodContext(modality, splits.test.image_size[0], device, int(cfg.seeds[0]), splits.test.modalities)
    timer = Timer(device, args.repeats, 1)
    batch = splits.test.subset(slice(0, min(int(cfg.eval_batch_size), len(splits.test)))).to(device)
    rows = []
    for spec in pick_specs(cfg, args.methods):
        rows.append(measure_method(spec, context, splits, batch, timer, args))
        print(json.dumps(rows[-1]), flush=True)
    result = {
        "device": device_name(device),
        "threads": torch.get_num_threads(),
        "interop_threads": torch.get_num_interop_threads(),
        "torch": torch.__version__,
        "commit": git_commit(),
        "modality": modality,
        "methods": rows,
        "median_train_ratio": statistics.median(r["train_ratio"] for r in rows) if rows else None,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    return result


if __name__ == "__main__":
    main()
