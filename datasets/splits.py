"""Which subjects go to train / val / test: a user's split file or a deterministic seeded split.

Splits are made of subjects, never of slices, so that no subject contributes to two splits.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from pathlib import Path

from datasets.config import SPLIT_FILE_FORMAT, DatasetConfig, load_split_json
from datasets.errors import DatasetError
from datasets.layouts import natural_key

SPLIT_NAMES = ("train", "val", "test")


def assign_subjects(subjects: Sequence[str], config: DatasetConfig) -> dict[str, list[str]]:
    """Subject ids per split (each list in natural order) for the subjects found on disk.

    With ``config.split_file`` the file decides (every id in it must exist); otherwise
    :func:`seeded_split` with ``split_fractions`` and ``split_seed``. ``max_subjects = N`` keeps the
    first N subjects in natural order: of all subjects found, or of the ids in the split file.
    ``config.test_only_subjects`` are added to test (after ``max_subjects``), never split.
    """
    n_max = config.max_subjects
    if n_max is not None and (not isinstance(n_max, int) or n_max < 1):
        raise DatasetError(f"max_subjects={n_max!r}; expected a positive integer or None")
    test_only = _test_only(subjects, config)
    ordered = sorted((s for s in subjects if s not in test_only), key=natural_key)
    where = f"{config.root}"
    splits = _split(ordered, config, n_max, where)
    if test_only:
        splits["test"] = sorted(splits["test"] + test_only, key=natural_key)
    return splits


def _test_only(subjects: Sequence[str], config: DatasetConfig) -> list[str]:
    """``config.test_only_subjects``, each checked to be a subject on disk."""
    known = set(subjects)
    missing = [s for s in config.test_only_subjects if s not in known]
    if missing:
        raise DatasetError(
            f"test_only_subjects: {len(missing)} id(s) not found in {config.root}, e.g. {missing[:5]}; "
            "expected ids of subjects on disk"
        )
    return list(dict.fromkeys(config.test_only_subjects))


def _split(ordered: list[str], config: DatasetConfig, n_max: int | None, where: str) -> dict[str, list[str]]:
    if config.split_file is None:
        return seeded_split(ordered[:n_max], config.split_fractions, config.split_seed, where)
    splits = read_split_file(Path(config.split_file), ordered, where)
    if n_max is not None:
        keep = set(sorted((s for ids in splits.values() for s in ids), key=natural_key)[:n_max])
        splits = {name: [s for s in ids if s in keep] for name, ids in splits.items()}
        empty = [name for name, ids in splits.items() if not ids]
        if empty:
            raise DatasetError(
                f"max_subjects={n_max} keeps no {empty[0]} subject of split file {config.split_file}; "
                "expected every split to keep at least one subject (raise max_subjects)"
            )
    return splits


def seeded_split(
    subjects: Sequence[str], fractions: Sequence[float], seed: int, where: str = "the dataset"
) -> dict[str, list[str]]:
    """Deterministic split of ``subjects`` into train / val / test with the given fractions.

    Counts: ``fraction x n`` rounded by largest remainder, then at least one subject per split.
    Assignment: subjects ordered by ``sha256(f"{seed}:{id}")``, the first ``n_train`` to train, the
    next ``n_val`` to val, the rest to test. The result depends only on the ids, the fractions and the
    seed (no RNG whose stream could change between library versions).
    """
    fractions = tuple(float(f) for f in fractions)
    if len(fractions) != 3 or min(fractions) <= 0 or not math.isclose(sum(fractions), 1.0, abs_tol=1e-6):
        raise DatasetError(
            f"split_fractions={list(fractions)}; expected three positive fractions (train, val, test) summing to 1"
        )
    n = len(subjects)
    if n < 3:
        raise DatasetError(
            f"{n} subject(s) in {where}: a seeded train/val/test split needs at least 3 subjects (one per "
            "split); add subjects, raise max_subjects or give a split file"
        )
    raw = [f * n for f in fractions]
    counts = [math.floor(r) for r in raw]
    for i in sorted(range(3), key=lambda i: raw[i] - counts[i], reverse=True)[: n - sum(counts)]:
        counts[i] += 1
    for i in range(3):
        if counts[i] == 0:
            counts[max(range(3), key=lambda j: counts[j])] -= 1
            counts[i] = 1
    order = sorted(subjects, key=lambda s: hashlib.sha256(f"{seed}:{s}".encode()).hexdigest())
    bounds = [0, counts[0], counts[0] + counts[1], n]
    return {name: sorted(order[bounds[i] : bounds[i + 1]], key=natural_key) for i, name in enumerate(SPLIT_NAMES)}


def read_split_file(path: Path, available: Sequence[str], where: str = "the dataset") -> dict[str, list[str]]:
    """Read and check a JSON split file against the subject ids found on disk."""
    data = load_split_json(path)
    if not isinstance(data, dict) or set(data) != set(SPLIT_NAMES):
        keys = sorted(data) if isinstance(data, dict) else type(data).__name__
        raise DatasetError(f"split file {path} has keys {keys}; expected exactly {SPLIT_FILE_FORMAT}")
    splits: dict[str, list[str]] = {}
    seen: dict[str, str] = {}
    for name in SPLIT_NAMES:
        ids = data[name]
        if not isinstance(ids, list) or not all(isinstance(i, (str, int)) and not isinstance(i, bool) for i in ids):
            raise DatasetError(
                f"split file {path}: {name!r} is not a list of subject ids; expected {SPLIT_FILE_FORMAT}"
            )
        if not ids:
            raise DatasetError(f"split file {path}: {name!r} is empty; expected at least one subject per split")
        for subject in map(str, ids):
            if subject in seen:
                raise DatasetError(
                    f"split file {path}: subject {subject!r} is listed in {seen[subject]!r} and in {name!r}; "
                    "expected every subject in one split only"
                )
            seen[subject] = name
        splits[name] = sorted(map(str, ids), key=natural_key)
    known = set(available)
    unknown = [s for s in seen if s not in known]
    if unknown:
        raise DatasetError(
            f"split file {path}: {len(unknown)} subject id(s) not found in {where}, e.g. {unknown[:5]}; "
            f"expected ids of subjects on disk such as {list(available[:3])}"
        )
    return splits
