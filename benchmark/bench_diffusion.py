"""Cost benchmark of the diffusion baselines (not a test): where the time of DDPM and AutoDDPM goes.

For each method config (default: ``configs/method/ddpm.yaml`` and ``autoddpm.yaml``) at the given image
size and batch size it reports

* ``ms_per_slice``: wall time of ``predict`` on one batch, divided by the batch size;
* ``nfe_per_slice``: network evaluations per slice (from ``MethodOutput.nfe``);
* ``forward_ms``: one batched network forward, timed alone;
* ``network_ms`` / ``overhead``: the network's share of ``predict`` measured by timing every call inside
  the sampling loop, and the rest (noise, scheduler arithmetic, merges, maps) as a fraction of the total
  (target ≤ 15 %); ``overhead_vs_forward`` = 1 - NFE x forward_ms / predict time, a cross-check.

With ``--compare-networks`` it also times one training step (batch 16) and one forward (``--batch``) of
the two candidate ε-networks, diffusers ``UNet2DModel`` (the one used) and MONAI ``DiffusionModelUNet``,
at the DDPM config's widths, attention levels and patch stem: the measurement behind the choice written
in :mod:`methods.nets.denoiser`.

Weights are untrained (cost does not depend on them) and inputs are synthetic disk "brains". Timings are
medians over ``--repeats`` after a warm-up; on a shared machine they are noisy, say so when quoting them.

    .venv/bin/python -m benchmark.bench_diffusion outputs/bench_diffusion.json --size 64 --batch 32
"""

from __future__ import annotations

import argparse
import csv
import json
import statistics
import time
from pathlib import Path
from typing import Any

import torch
from benchmark.config import method_config
from benchmark.provenance import device_name, environment
from benchmark.timing import Timer
from datasets.slices import SliceSet
from methods import MethodContext, create_method
from methods.base import AnomalyMethod
from methods.nets.denoiser import DenoiserUNet


class TimedNet(torch.nn.Module):
    """Wraps a network and accumulates the wall time of its calls."""

    def __init__(self, net: torch.nn.Module) -> None:
        super().__init__()
        self.net = net
        self.seconds = 0.0
        self.calls = 0

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        start = time.perf_counter()
        out = self.net(x, t)
        self.seconds += time.perf_counter() - start
        self.calls += 1
        return out


def synthetic_batch(n: int, size: int, seed: int = 0) -> SliceSet:
    """``n`` disk-shaped brains (background -3, smooth texture, one bright blob) of one modality."""
    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    c = (size - 1) / 2
    brain = (((yy - c) ** 2 + (xx - c) ** 2) <= (0.42 * size) ** 2).float().expand(n, size, size)
    texture = torch.nn.functional.interpolate(torch.randn(n, 1, 8, 8, generator=g), size=size, mode="bilinear")[:, 0]
    lesion = ((yy - c * 0.8) ** 2 + (xx - c * 1.2) ** 2) <= (0.08 * size) ** 2
    x = torch.where(brain > 0, texture + 4.0 * lesion, torch.full_like(texture, -3.0))
    return SliceSet(
        images=x[:, None].contiguous(), brain=brain.contiguous(), labels=lesion.expand(n, size, size) & (brain > 0),
        modalities=("flair",), subjects=tuple(f"s{i}" for i in range(n)), slice_index=(0,) * n,
    )  # fmt: skip


def build(config: str, size: int, device: torch.device) -> tuple[AnomalyMethod, dict[str, Any]]:
    """The method of ``configs/method/<config>.yaml`` with untrained weights, calibrated on synthetic data."""
    cfg = method_config(config)  # inherited defaults merged (e.g. autoddpm.yaml = ddpm.yaml + its own)
    method = create_method(cfg["name"], MethodContext("flair", size, device, seed=0), **cfg.get("params", {}))
    method.calibrate(synthetic_batch(2, size, seed=1).to(device))
    return method, cfg


def _median_seconds(fn, repeats: int, device: torch.device) -> float:
    """Median seconds of ``fn`` after one warm-up call, through the harness's :class:`Timer`."""
    return Timer(device).repeat(fn, repeats, warmup=1).median


@torch.inference_mode()
def measure(config: str, size: int, batch_size: int, repeats: int, device: torch.device) -> dict[str, Any]:
    """One result row for one method config."""
    method, cfg = build(config, size, device)
    batch = synthetic_batch(batch_size, size).to(device)
    net = method.net
    x = torch.randn(batch_size, 1, size, size, device=device)
    t = torch.full((batch_size,), 100, device=device)
    forward = _median_seconds(lambda: net(x, t), max(repeats, 5), device)

    timed = TimedNet(net)
    method.net = timed
    predict_times, network_times = [], []
    nfe = 0
    for _ in range(repeats):
        timed.seconds, timed.calls = 0.0, 0
        start = time.perf_counter()
        out = method.predict(batch)
        predict_times.append(time.perf_counter() - start)
        network_times.append(timed.seconds)
        nfe = int(out.nfe[0])
        if timed.calls != nfe:
            raise AssertionError(f"{config}: {timed.calls} network calls but NFE reported {nfe}")
    method.net = net
    total, network = statistics.median(predict_times), statistics.median(network_times)
    return {
        "config": config,
        "method": method.display_name,
        "image_size": size,
        "batch_size": batch_size,
        "nfe_per_slice": nfe,
        "ms_per_slice": 1000 * total / batch_size,
        "forward_ms": 1000 * forward,
        "forward_ms_per_slice": 1000 * forward / batch_size,
        "network_ms": 1000 * network,
        "predict_ms": 1000 * total,
        "overhead": 1 - network / total,
        "overhead_vs_forward": 1 - nfe * forward / total,
        "params": method.parameter_count(),
        "repeats": repeats,
        "device": device_name(device),
        "threads": torch.get_num_threads(),
    }


class MonaiDenoiser(torch.nn.Module):
    """MONAI ``DiffusionModelUNet`` behind the same pixel-unshuffle stem as :class:`DenoiserUNet`."""

    def __init__(self, channels: list[int], attention: list[bool], layers_per_block: int, patch: int, norm_groups: int):
        super().__init__()
        from monai.networks.nets import DiffusionModelUNet

        self.fold, self.unfold = torch.nn.PixelUnshuffle(patch), torch.nn.PixelShuffle(patch)
        self.unet = DiffusionModelUNet(
            spatial_dims=2, in_channels=patch * patch, out_channels=patch * patch, channels=tuple(channels),
            attention_levels=tuple(attention), num_res_blocks=layers_per_block, norm_num_groups=norm_groups,
            num_head_channels=min((c for c, a in zip(channels, attention) if a), default=channels[-1]),
        )  # fmt: skip

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return self.unfold(self.unet(self.fold(x), timesteps=t))


def compare_networks(size: int, batch_size: int, repeats: int, device: torch.device) -> list[dict[str, Any]]:
    """Train-step and forward time of diffusers vs MONAI ε-UNets at the DDPM config's architecture."""
    params = method_config("ddpm")["params"]
    arch = {k: params[k] for k in ("channels", "attention", "layers_per_block", "patch", "norm_groups")}
    rows = []
    for library, net in (("diffusers", DenoiserUNet(size, **arch)), ("monai", MonaiDenoiser(**arch))):
        net = net.to(device)
        optimizer = torch.optim.Adam(net.parameters(), lr=1e-4)
        x16, t16 = torch.randn(16, 1, size, size, device=device), torch.randint(0, 1000, (16,), device=device)

        def train_step() -> None:
            loss = net(x16, t16).square().mean()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()

        train = _median_seconds(train_step, repeats, device)
        x, t = torch.randn(batch_size, 1, size, size, device=device), torch.full((batch_size,), 100, device=device)
        with torch.inference_mode():
            forward = _median_seconds(lambda: net(x, t), max(repeats, 5), device)
        rows.append({
            "network": library, "image_size": size, "train_step_ms_batch16": 1000 * train,
            "forward_ms": 1000 * forward, "forward_ms_per_slice": 1000 * forward / batch_size, "batch_size": batch_size,
            "params": sum(p.numel() for p in net.parameters()), "threads": torch.get_num_threads(), **arch,
        })  # fmt: skip
    return rows


def write(rows: list[dict[str, Any]], path: Path) -> None:
    """JSON (rows + environment) or, for a ``.csv`` path, one CSV line per row (union of the rows' keys)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".csv":
        with path.open("w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(dict.fromkeys(key for row in rows for key in row)))
            writer.writeheader()
            writer.writerows(rows)
    else:
        path.write_text(json.dumps({"rows": rows, "environment": environment()}, indent=1))


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("output", type=Path, help="results file (.json, or .csv)")
    parser.add_argument("--configs", nargs="+", default=["ddpm", "autoddpm"], help="configs/method/<name>.yaml")
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--batch", type=int, default=32, help="slices per predict call (the runner's eval_batch_size)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--compare-networks", action="store_true", help="also time diffusers vs MONAI UNets")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    rows = []
    for config in args.configs:
        row = measure(config, args.size, args.batch, args.repeats, device)
        print(
            f"{row['method']:22s} NFE {row['nfe_per_slice']:4d} | {row['ms_per_slice']:8.1f} ms/slice | forward "
            f"{row['forward_ms']:6.1f} ms (B={args.batch}) | overhead {100 * row['overhead']:5.1f} % "
            f"(vs isolated forward {100 * row['overhead_vs_forward']:5.1f} %)",
            flush=True,
        )
        rows.append(row)
    if args.compare_networks:
        for row in compare_networks(args.size, args.batch, args.repeats, device):
            print(
                f"{row['network']:10s} train step (B=16) {row['train_step_ms_batch16']:7.1f} ms | forward "
                f"{row['forward_ms']:6.1f} ms (B={args.batch}, {row['forward_ms_per_slice']:.2f} ms/slice)",
                flush=True,
            )
            rows.append(row)
    write(rows, args.output)
    return rows


if __name__ == "__main__":
    main()
