"""Results store: atomic rows, resume semantics, arrays, strict JSON."""

import json
import math

import numpy as np
import pytest

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
