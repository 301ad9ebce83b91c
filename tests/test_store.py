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
