"""Concurrent pre-processing (``DatasetConfig.load_workers`` / ``load_pool``): the slices are byte-identical to a
serial build whatever the pool, the pool size follows the config, and bad values are clear errors."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir

import datasets.loader
from benchmark.config import dataset_config
from datasets.config import DatasetConfig
from datasets.errors import DatasetError
from datasets.loader import load_splits, load_workers
from tests.nifti_fixtures import BRATS_MODALITIES, SLICE_RANGE, write_brats
from tests.tiny_config import CONFIG_DIR

SETS = ("train", "val", "val_labelled", "test_slab", "test")


def config_for(root: Path, cache: Path, **overrides: object) -> DatasetConfig:
    fields: dict[str, object] = dict(
        layout="brats", root=root, modalities=BRATS_MODALITIES, image_size=16, slice_range=SLICE_RANGE,
        split_fractions=(0.5, 0.25, 0.25), cache_dir=cache,
    )  # fmt: skip
    return DatasetConfig(**(fields | overrides))  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("brats") / "BraTS2021_Training_Data"
    write_brats(path, n=6)
    return path


@pytest.mark.parametrize("pool", ["thread", "process"])
def test_a_pool_builds_byte_identical_slices_to_a_serial_build(root, tmp_path, pool) -> None:
    serial = load_splits(config_for(root, tmp_path / "serial", load_workers=1), progress=False)
    pooled = load_splits(config_for(root, tmp_path / pool, load_workers=2, load_pool=pool), progress=False)
    assert pooled.data_hash == serial.data_hash and pooled.test_view == serial.test_view
    for name in SETS:
        a, b = getattr(serial, name), getattr(pooled, name)
        for field in ("images", "brain", "labels"):
            x, y = getattr(a, field), getattr(b, field)
            assert x.dtype == y.dtype and x.shape == y.shape
            assert x.contiguous().numpy().tobytes() == y.contiguous().numpy().tobytes(), (name, field)
        assert (a.subjects, a.slice_index, a.modalities) == (b.subjects, b.slice_index, b.modalities)
    written = sorted(p.name for p in (tmp_path / pool).iterdir())
    assert written == sorted(p.name for p in (tmp_path / "serial").iterdir())  # one cache, same names: same hash


def test_the_load_fields_do_not_change_the_preprocess_hash(root, tmp_path) -> None:
    config = config_for(root, tmp_path)
    assert config_for(root, tmp_path, load_workers=3, load_pool="process").preprocess_hash() == config.preprocess_hash()


def test_pool_size_is_the_config_value_else_the_usable_cpus_capped(root, tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(datasets.loader.os, "sched_getaffinity", lambda pid: set(range(32)), raising=False)
    config = config_for(root, tmp_path)
    assert load_workers(config, 100) == datasets.loader.MAX_WORKERS == 8
    assert load_workers(config, 3) == 3  # never more workers than subjects
    assert load_workers(dataclasses.replace(config, load_workers=12), 100) == 12
    monkeypatch.setattr(datasets.loader.os, "sched_getaffinity", lambda pid: {0, 5})
    assert load_workers(config, 100) == 2


def test_serial_load_runs_in_the_calling_thread(root, tmp_path, monkeypatch) -> None:
    def no_pool(*args: object, **kwargs: object) -> None:
        raise AssertionError("a pool was created for load_workers=1")

    monkeypatch.setattr(datasets.loader, "ThreadPoolExecutor", no_pool)
    monkeypatch.setattr(datasets.loader, "ProcessPoolExecutor", no_pool)
    splits = load_splits(config_for(root, tmp_path, load_workers=1), progress=False)
    assert len(splits.train) > 0


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"load_workers": 0}, r"load_workers=0; expected a positive integer or null"),
        ({"load_workers": 2.5}, r"load_workers=2\.5; expected a positive integer or null"),
        ({"load_workers": True}, r"load_workers=True; expected a positive integer or null"),
        ({"load_pool": "fork"}, r"load_pool='fork'; expected one of \['thread', 'process'\]"),
    ],
)
def test_bad_load_settings_are_clear_errors(root, tmp_path, overrides, message) -> None:
    with pytest.raises(DatasetError, match=message):
        load_splits(config_for(root, tmp_path, **overrides), progress=False)


def test_an_error_in_a_worker_process_reaches_the_caller_with_its_message(tmp_path) -> None:
    root = tmp_path / "data"
    write_brats(root, n=4)
    (root / "BraTS2021_00002" / "BraTS2021_00002_t1.nii.gz").write_bytes(b"not a nifti")
    with pytest.raises(DatasetError, match=r"cannot read .*BraTS2021_00002_t1\.nii\.gz .*expected a NIfTI volume"):
        load_splits(config_for(root, tmp_path / "c", load_workers=2, load_pool="process"), progress=False)


@pytest.mark.parametrize("dataset", ["brats", "brats2023", "atlas", "isles", "synthetic"])
def test_every_dataset_yaml_declares_the_load_defaults_and_overrides_reach_the_config(dataset) -> None:
    base = [f"dataset={dataset}", "dataset.root=/data/x"]
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        default = compose(config_name="config", overrides=base)
        chosen = compose(config_name="config", overrides=[*base, "dataset.load_workers=3", "dataset.load_pool=process"])
    assert (default.dataset.load_workers, default.dataset.load_pool) == (None, "thread")
    assert (dataset_config(default).load_workers, dataset_config(default).load_pool) == (None, "thread")
    assert (dataset_config(chosen).load_workers, dataset_config(chosen).load_pool) == (3, "process")
