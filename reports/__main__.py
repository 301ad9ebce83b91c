"""Regenerate a report from an existing results store: ``python -m reports outputs/default``."""

from __future__ import annotations

import argparse
from pathlib import Path

from benchmark.store import ResultsStore
from reports.report import write_report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("run_dir", type=Path, help="an experiment's output folder (holding results/)")
    parser.add_argument("--out", type=Path, default=None, help="report folder (default: <run_dir>/report)")
    args = parser.parse_args()
    store = ResultsStore(args.run_dir / "results")
    if not store.rows_dir.exists():
        raise SystemExit(f"{args.run_dir}: no results/rows folder; run `python -m benchmark` first")
    print(write_report(store, args.out or args.run_dir / "report"))


if __name__ == "__main__":
    main()
