"""Replay a saved history into the checker: `python -m zkpy.verify HISTORY.jsonl [--all-reads]`.

Prints the verdict and each anomaly with its minimal sub-history; exits 1 if there is one."""

from __future__ import annotations

import argparse
import sys

from .history import History
from .linearizability import check


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m zkpy.verify", description=__doc__)
    parser.add_argument("history", help="a history saved with History.save (JSON lines)")
    parser.add_argument("--all-reads", action="store_true",
                        help="hold reads without a sync to linearizability too (stronger than ZooKeeper promises)")
    args = parser.parse_args(argv)
    report = check(History.load(args.history), all_reads_linearizable=args.all_reads)
    print(report)
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
