"""Training curves are handed over while training runs and written live: the loop's ``on_log`` sink, the CSV
(flushed per record, started afresh only by a new training), TensorBoard when installed, and the ``logger`` /
``deterministic`` config checks."""

from __future__ import annotations

import csv
import math

import pytest
import torch
from torch import nn

import benchmark.config as config
from benchmark.config import ConfigError, validate_config
from benchmark.train_logger import CSV_NAME, TrainLogger
from datasets.slices import SliceSet
from methods import MethodContext, create_method, registered_methods
from methods.base import TrainBudget
from methods.training import train_networks
from tests.tiny_config import method_config, tiny_ae
from tests.toy_data import toy_slices, toy_splits


def _read_csv(path) -> list[list[str]]:
    with open(path, newline="") as f:
        return list(csv.reader(f))


# ------------------------------------------------------------------------------------------------ the loop's sink
def test_the_loop_hands_each_record_over_as_soon_as_it_exists() -> None:
    net = nn.Linear(1, 1)
    train_batches = 0
    seen: list[tuple[int, dict[str, float]]] = []  # (training batches so far, record) at each call

    def loss(batch: SliceSet, _: torch.Generator) -> torch.Tensor:
        nonlocal train_batches
        train_batches += net.training
        return net(batch.images[:, :1, 0, :1]).square().mean()

    def sink(record) -> None:
        seen.append((train_batches, record))
        record["val_loss"] = -1.0  # the sink gets a copy: the history is not altered

    budget = TrainBudget(steps=5, batch_size=2, lr=0.1, val_every=2)
    optimizer = torch.optim.SGD(net.parameters(), lr=budget.lr)
    train, val = toy_slices(4), toy_slices(2, seed=5)
    log = train_networks([net], loss, train, val, budget, optimizer, seed=0, progress=False, on_log=sink)
    assert [batches for batches, _ in seen] == [2, 4, 5]  # after steps 2, 4 and the last one, not at the end
    assert [r["step"] for _, r in seen] == [h["step"] for h in log.history] == [2, 4, 5]
    assert [r["train_loss"] for _, r in seen] == [h["train_loss"] for h in log.history]
    assert all(h["val_loss"] >= 0 for h in log.history)


TRAINING_METHODS = sorted(name for name, cls in registered_methods().items() if cls.trains)


@pytest.mark.parametrize("name", TRAINING_METHODS)
def test_every_training_method_passes_its_context_sink_to_the_loop(name: str) -> None:
    cfg = method_config(name)  # configs/method/<name>.yaml, with its cheap smoke settings
    records: list[dict[str, float]] = []
    splits = toy_splits(size=32, n_train=8, n_val=4, n_test=2)
    context = MethodContext("flair", 32, torch.device("cpu"), 0, splits.test.modalities, on_log=records.append)
    method = create_method(name, context, **(cfg.get("params", {}) | cfg.get("smoke_params", {})))
    budget = TrainBudget(**(cfg["train"] | {"steps": 3, "batch_size": 4, "val_every": 2, "patience": None}))
    log = method.fit(splits.train, splits.val, budget)
    fields = ("step", "train_loss", "val_loss")  # a method may add fields to its last record after training
    assert [[r[k] for k in fields] for r in records] == [[h[k] for k in fields] for h in log.history]
    assert [r["step"] for r in records] == [2, 3]


# ------------------------------------------------------------------------------------------------ CSV
def test_csv_rows_are_on_disk_before_the_logger_is_closed(tmp_path) -> None:
    logger = TrainLogger(tmp_path / "cell", ("csv",))
    logger({"step": 10, "train_loss": 0.1 + 0.2, "val_loss": 2.5})
    header = ["step", "train_loss", "val_loss"]
    assert _read_csv(tmp_path / "cell" / CSV_NAME) == [header, ["10", repr(0.1 + 0.2), "2.5"]]
    logger({"step": 20, "train_loss": 0.125, "val_loss": math.nan})  # no validation slices: empty field
    rows = _read_csv(tmp_path / "cell" / CSV_NAME)
    logger.close()
    assert rows[2] == ["20", "0.125", ""]
    assert float(rows[1][1]) == 0.1 + 0.2  # full precision
    with pytest.raises(RuntimeError, match="closed"):
        logger({"step": 30, "train_loss": 1.0, "val_loss": 1.0})


def test_a_logger_without_records_keeps_an_earlier_log_and_a_new_training_replaces_it(tmp_path) -> None:
    directory = tmp_path / "cell"
    first = TrainLogger(directory, ("csv",))
    first({"step": 1, "train_loss": 3.0, "val_loss": 4.0})
    first.close()
    TrainLogger(directory, ("csv",)).close()  # a cell that reloads its checkpoint trains nothing
    assert _read_csv(directory / CSV_NAME)[1] == ["1", "3.0", "4.0"]
    again = TrainLogger(directory, ("csv",))
    again({"step": 1, "train_loss": 5.0, "val_loss": 6.0})
    again.close()
    assert _read_csv(directory / CSV_NAME) == [["step", "train_loss", "val_loss"], ["1", "5.0", "6.0"]]


def test_logger_none_writes_nothing_and_unknown_sinks_fail(tmp_path) -> None:
    logger = TrainLogger(tmp_path / "cell", ())
    logger({"step": 1, "train_loss": 1.0, "val_loss": 1.0})
    logger.close()
    assert not (tmp_path / "cell").exists()
    with pytest.raises(ValueError, match="wandb"):
        TrainLogger(tmp_path, ("wandb",))


def test_tensorboard_events_hold_the_records(tmp_path) -> None:
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    logger = TrainLogger(tmp_path, ("tensorboard",))
    logger({"step": 2, "train_loss": 0.5, "val_loss": 0.75})
    logger({"step": 4, "train_loss": 0.25, "val_loss": math.nan})
    events = EventAccumulator(str(tmp_path))
    events.Reload()  # before close: flushed per record
    logger.close()
    assert [(e.step, e.value) for e in events.Scalars("loss/train")] == [(2, 0.5), (4, 0.25)]
    assert [(e.step, e.value) for e in events.Scalars("loss/val")] == [(2, 0.75)]


# ------------------------------------------------------------------------------------------------ config
@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("logger=wandb", r"^logger='wandb'; expected one of csv, tensorboard, both, none$"),
        ("deterministic=maybe", r"^deterministic='maybe'; expected true or false$"),
    ],
)
def test_bad_logger_and_deterministic_values_fail_naming_the_key(override, message, tmp_path, shared_data_dir) -> None:
    with pytest.raises(ConfigError, match=message):
        validate_config(tiny_ae(tmp_path, shared_data_dir, override))


@pytest.mark.parametrize("logger", ["tensorboard", "both"])
def test_tensorboard_without_the_package_is_a_one_line_config_error(logger, tmp_path, shared_data_dir, monkeypatch):
    monkeypatch.setattr(config, "tensorboard_available", lambda: False)
    with pytest.raises(ConfigError, match=rf"^logger={logger}: the tensorboard package is not installed; ") as error:
        validate_config(tiny_ae(tmp_path, shared_data_dir, f"logger={logger}"))
    assert "\n" not in str(error.value) and "logger=csv" in str(error.value)
