"""Method-specific diagnoses: ``python -m benchmark.diagnose [hydra overrides]``.

For every method of the experiment that implements :meth:`~methods.base.AnomalyMethod.diagnose`, in each of the
experiment's modalities (first seed): train the cell if no checkpoint of its training identity exists, else
reload it (as the runner does), call ``diagnose(val, test, eval_batch_size, score_maps)`` and keep the record
when it returns one. Writes ``diagnosis.{md,json}`` to the experiment's report folder and prints the markdown.

    python -m benchmark.diagnose                                   # default experiment, its modalities
    python -m benchmark.diagnose experiment=table3 experiment.modalities=[flair]

``score_maps`` gives methods the suite's standard map scores (oracle_global mean Dice, pixel AUROC) without
importing the benchmark. The configuration is checked before any data are prepared; errors are reported in one
line as by ``python -m benchmark`` (:mod:`benchmark.cli`).
"""

from __future__ import annotations

import json
from pathlib import Path

import hydra
import torch
from omegaconf import DictConfig

import benchmark.hydra_resolvers  # noqa: F401  (registers the resolvers configs/config.yaml uses)
from benchmark.cli import one_line_errors
from benchmark.compute import apply_compute, autocast
from benchmark.config import ConfigError, compute_options, validate_config
from benchmark.config_path import CONFIG_DIR
from benchmark.metrics import pixel_auroc
from benchmark.runner import Cell, open_run, train_or_load
from benchmark.thresholds import choose_threshold
from datasets.slices import SliceSet
from methods import MethodContext, create_method
from methods.base import AnomalyMethod, MethodUnavailable, method_class, registered_methods


def standard_map_scores(maps: torch.Tensor, slices: SliceSet) -> dict[str, float]:
    """oracle_global mean Dice (the main table's protocol) and pixel AUROC of ``maps`` on ``slices``."""
    chosen = choose_threshold("oracle_global", maps, slices.labels, slices.brain, warn_edge=False)
    return {"dice": chosen.objective, "auroc": pixel_auroc(maps, slices.labels, slices.brain)}


def has_diagnosis(name: str) -> bool:
    """Whether the method registered as ``name`` implements the ``diagnose`` hook (else it is not trained)."""
    return method_class(name).diagnose is not AnomalyMethod.diagnose


def run_diagnosis(cfg: DictConfig) -> str:
    """Diagnose every method of the experiment that has a diagnosis, in each modality (first seed); write the
    markdown and JSON to ``paths.report`` and return the markdown. Raises :class:`ConfigError` before any work
    when no method of the experiment has a diagnosis."""
    specs = [spec for spec in validate_config(cfg) if has_diagnosis(spec.name)]
    if not specs:
        with_hook = ", ".join(sorted(name for name in registered_methods() if has_diagnosis(name)))
        raise ConfigError(
            f"benchmark.diagnose: no method of experiment {cfg.experiment.name!r} (after experiment.only_methods) "
            f"has a diagnosis; expected one of the methods {with_hook}"
        )
    setup = open_run(cfg)
    splits = setup.splits
    seed = int(cfg.seeds[0])
    compute = compute_options(cfg)  # the run's precision picks the checkpoint, as in the comparison
    sections, records = [], {}
    for modality in cfg.experiment.modalities:
        context = MethodContext(modality, splits.test.image_size[0], setup.device, seed, splits.test.modalities,
                                progress=bool(cfg.progress))  # fmt: skip
        for spec in specs:
            try:
                method = create_method(spec.name, context, **spec.params)
                apply_compute(method, compute)
                cell = Cell.of(splits, modality, spec, seed, compute.precision)
                train_log, _ = train_or_load(method, cell, splits, setup.checkpoints, bool(cfg.retrain))
            except MethodUnavailable:
                continue
            with autocast(cell.precision, method.device):
                record = method.diagnose(splits.val, splits.test, int(cfg.eval_batch_size), standard_map_scores)
            if record is None:
                continue
            title = f"{spec.row_label}: {cell.key} ({train_log.steps} training steps)"
            sections.append(f"## {title}\n\n{record['markdown']}")
            records[cell.key] = record | {"method_label": spec.row_label, "train_steps": train_log.steps}
    if not records:
        raise ValueError("benchmark.diagnose: no method of the experiment returned a diagnosis")
    out = Path(cfg.paths.report)
    out.mkdir(parents=True, exist_ok=True)
    text = f"# Diagnosis: {cfg.experiment.name}\n\n" + "\n".join(sections)
    (out / "diagnosis.md").write_text(text)
    (out / "diagnosis.json").write_text(json.dumps(records, indent=2))
    return text


@hydra.main(config_path=CONFIG_DIR, config_name="config", version_base="1.3")
def main(cfg: DictConfig) -> None:
    """Diagnose the configured experiment's methods and print the markdown."""
    with one_line_errors():
        print(run_diagnosis(cfg))


if __name__ == "__main__":
    main()
