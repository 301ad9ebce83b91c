"""The built-in synthetic set's statistics beside its description: ``<root>/dataset_statistics.json`` (the
statistics of the slices the suite loaded, :mod:`datasets.dataset_statistics`) and a ``statistics`` entry in
``<root>/dataset_description.json`` that names that file and the data hash it belongs to.

Kept out of the generator (:mod:`datasets.synthetic`): statistics exist only after the set is pre-processed,
which depends on the run's ``dataset`` config (e.g. ``image_size``), and the generator writes raw volumes. The
file is rewritten when the loaded data hash changes (a new pre-processing or a regenerated set) and left alone
otherwise, so a second run of the same config costs one small JSON read.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from filelock import FileLock

from datasets.dataset_statistics import STATISTICS_FILE, VERSION, atomic_write_text, dataset_statistics, to_json
from datasets.slices import Splits
from datasets.synthetic import DESCRIPTION, LOCK

log = logging.getLogger(__name__)


def record_statistics(root: Path, splits: Splits) -> Path:
    """Write ``splits``' statistics to ``root / dataset_statistics.json`` unless that file already holds this
    data hash's (at this statistics version), and reference it from ``root / dataset_description.json`` (both
    atomically, under the generator's lock); returns the statistics file."""
    root = Path(root)
    path = root / STATISTICS_FILE
    description_path = root / DESCRIPTION
    with FileLock(str(root / LOCK)):
        description = _read_json(description_path)
        recorded = description.get("statistics") or {}
        written = _read_json(path)
        if (
            recorded.get("data_hash") == written.get("data_hash") == splits.data_hash
            and written.get("version") == VERSION
        ):
            return path
        stats = dataset_statistics(splits)
        atomic_write_text(path, to_json(stats))
        if description:  # the generator writes it; never invent one
            description["statistics"] = {"file": STATISTICS_FILE, "data_hash": splits.data_hash,
                                         "image_size": stats["image_size"]}  # fmt: skip
            atomic_write_text(description_path, json.dumps(description, indent=1))
    log.info("%s: dataset statistics (data %s) written to %s", splits.name, splits.data_hash, path)
    return path


def _read_json(path: Path) -> dict[str, Any]:
    """The JSON object in ``path``; empty when the file is missing (a clear error when it is not an object)."""
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except ValueError as error:
        raise ValueError(f"{path}: not valid JSON ({error}); expected the file the synthetic generator wrote") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path}: a JSON {type(data).__name__}; expected a JSON object")
    return data
