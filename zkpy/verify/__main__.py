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
    from .models import MODELS
    from .run import MAX_EXACT_STATES, MAX_STATES
    from .workloads import WORKLOADS, make

    # Every model a workload of `zkpy verify` checks (the fencing epoch's too), with a run's
    # bounds: a replay decides what the run decided, and skips no op it checked.
    models = dict(MODELS)
    for name in WORKLOADS:
        models.update(make(name, "/").models)
    report = check(History.load(args.history), models=models, all_reads_linearizable=args.all_reads,
                   max_states=MAX_STATES, max_exact_states=MAX_EXACT_STATES)
    print(report)
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
