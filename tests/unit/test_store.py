"""Results store: atomic rows, resume semantics, arrays, strict JSON."""

import json
import math
import os
import stat
import time

import numpy as np
import pytest

from benchmark.runner import float16_copy
from benchmark.store import ResultsStore


def test_write_then_read_rows_and_arrays(tmp_path) -> None:
    store = ResultsStore(tmp_path)
    assert not store.has("a") and store.rows().empty
    store.write("a", [{"x": 1.0, "nan": math.nan, "np": np.float32(0.5)}], {"maps": np.ones((2, 3))})
    assert store.has("a") and store.cells() == ["a"]
    rows = store.rows()
    assert rows.loc[0, "x"] == 1.0 and rows.loc[0, "np"] == 0.5 and rows["nan"].isna().all()
    assert np.array_equal(store.arrays("a")["maps"], np.ones((2, 3)))
    # strict JSON on disk (NaN written as null)
    json.loads((tmp_path / "rows" / "a.json").read_text())


def test_stored_float16_copies_clip_to_the_largest_finite_value_instead_of_inf() -> None:
    values = np.array([-1e6, -1.5, 0.0, 2.25, 7e4, np.nan], dtype=np.float32)
    copy = float16_copy(values)
    assert copy.dtype == np.float16
    assert copy[:5].tolist() == [-65504.0, -1.5, 0.0, 2.25, 65504.0] and np.isnan(copy[5])


def test_failed_write_leaves_no_rows_and_no_temp_files(tmp_path) -> None:
    store = ResultsStore(tmp_path)

    class Unserialisable:
        pass

    with pytest.raises(TypeError):
        store.write("b", [{"bad": Unserialisable()}])
    assert not store.has("b")
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == []


def _concurrent_writer(root: str, writer: int, n_cells: int, start) -> None:
    """One job of a parallel run: its own cells, one cell shared with the other job, its job record."""
    store = ResultsStore(root)
    start.wait()
    for k in range(n_cells):
        rows = [{"writer": writer, "k": k, "protocol": p, "dice": writer + k / 100} for p in ("a", "b", "c")]
        store.write(f"own{writer}_{k}", rows, {"maps": np.full((4, 8, 8), writer * 1000 + k, dtype=np.float32)})
        shared = [{"writer": writer, "k": k, "protocol": p} for p in ("a", "b")]
        store.write("shared", shared, {"maps": np.full((64, 64), writer * 1000 + k, dtype=np.float32)})
    store.record_job(f"writer: {writer}\n", {"writer": str(writer)})


def test_two_concurrent_writers_lose_and_mix_nothing(tmp_path) -> None:
    """Two processes write distinct cells and the same cell at once: every row survives intact, and the
    shared cell holds the rows and arrays of one single write; both job records are kept."""
    import multiprocessing

    context = multiprocessing.get_context("fork")
    start = context.Barrier(2)
    n_cells = 15
    jobs = [context.Process(target=_concurrent_writer, args=(str(tmp_path), w, n_cells, start)) for w in (1, 2)]
    for job in jobs:
        job.start()
    for job in jobs:
        job.join(timeout=60)
        assert job.exitcode == 0
    store = ResultsStore(tmp_path)
    assert store.cells() == sorted([f"own{w}_{k}" for w in (1, 2) for k in range(n_cells)] + ["shared"])
    rows = store.rows()
    for w in (1, 2):
        for k in range(n_cells):
            cell = rows[(rows["writer"] == w) & (rows["k"] == k) & rows["dice"].notna()]
            assert list(cell["protocol"]) == ["a", "b", "c"] and (cell["dice"] == w + k / 100).all()
            assert (store.arrays(f"own{w}_{k}")["maps"] == w * 1000 + k).all()
    shared = json.loads((tmp_path / "rows" / "shared.json").read_text())
    writer, k = shared[0]["writer"], shared[0]["k"]
    assert shared == [{"writer": writer, "k": k, "protocol": p} for p in ("a", "b")]
    assert (store.arrays("shared")["maps"] == writer * 1000 + k).all()  # arrays of the same write as the rows
    assert len(store.jobs()) == 2
    assert sorted((j / "config.yaml").read_text() for j in store.jobs()) == ["writer: 1\n", "writer: 2\n"]
    assert store.config_path.read_text() in ("writer: 1\n", "writer: 2\n")
    assert not [p for p in tmp_path.rglob("*.tmp")]  # no temporary file left behind


def test_written_files_follow_the_umask_not_mkstemps_0600(tmp_path) -> None:
    umask = os.umask(0o022)
    os.umask(umask)
    plain = tmp_path / "plain"
    plain.write_text("")  # what an ordinary open() gives under this umask (e.g. 0644 under 022)
    store = ResultsStore(tmp_path)
    store.write("cell", [{"a": 1}], {"x": np.zeros(2)})
    for path in (tmp_path / "rows" / "cell.json", tmp_path / "arrays" / "cell.npz"):
        assert stat.S_IMODE(path.stat().st_mode) == stat.S_IMODE(plain.stat().st_mode) == 0o666 & ~umask


def test_orphan_temporaries_of_killed_runs_are_removed_and_live_ones_kept(tmp_path) -> None:
    from datasets.cache import ORPHAN_AGE_S, remove_orphan_temporaries

    (tmp_path / "rows").mkdir()
    orphan = tmp_path / "rows" / ".cell.json.abc123.tmp"
    live = tmp_path / "rows" / ".other.json.def456.tmp"
    finished = tmp_path / "rows" / "cell.json"
    for path in (orphan, live, finished):
        path.write_text("{}")
    old = time.time() - ORPHAN_AGE_S - 60
    os.utime(orphan, (old, old))
    os.utime(finished, (old, old))
    assert remove_orphan_temporaries(tmp_path) == [orphan]
    assert not orphan.exists() and live.exists() and finished.exists()


def test_soft_lock_for_cluster_file_systems_writes_and_releases(tmp_path) -> None:
    store = ResultsStore(tmp_path, soft_lock=True)
    store.write("cell", [{"a": 1}])
    assert store.rows()["a"].tolist() == [1]
    assert not (tmp_path / ".write.lock").exists()  # a soft lock is a file that exists only while held
