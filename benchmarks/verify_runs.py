"""Many seeded `zkpy verify` runs in a row, and one summary table: the long consistency run.

    python benchmarks/verify_runs.py --runs 100 --time 30          # about 100 x 45 s: 75 minutes
    python benchmarks/verify_runs.py --runs 3 --time 30 --first-seed 1000

Run k uses seed first_seed + k, workload k mod 5 (register, counter, queue, lock, fencing, in
turn) and every nemesis kind (kill, pause, partition, skew, torn-tail), against a fresh local
3-member zkpy ensemble with --clients clients (default 5).  Each run's report directory goes
under --out (default ./verify-runs-<time>/run-<seed>-<workload>/); a failing run's line names
its replay command.  Exit code 1 if any run found an anomaly or a lost write.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections import Counter

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from zkpy.verify.nemesis import KINDS  # noqa: E402
from zkpy.verify.run import run  # noqa: E402
from zkpy.verify.runconfig import RunConfig, RunResult  # noqa: E402
from zkpy.verify.workloads import WORKLOADS  # noqa: E402


def table(results: list[RunResult], wall: float) -> str:
    """Per workload, then in all: runs, ops (ok/unknown), anomalies, lost-write findings, faults."""
    rows = ["| workload | runs | ops | ok | unknown | anomalies | lost writes | failed runs | s per run |",
            "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    groups = {w: [r for r in results if r.config.workload == w] for w in WORKLOADS}
    groups["all"] = results
    for name, rs in groups.items():
        if not rs:
            continue
        rows.append(f"| {name} | {len(rs)} | {sum(r.stats.ops for r in rs)} | {sum(r.stats.ok for r in rs)} | "
                    f"{sum(r.stats.unknown for r in rs)} | {sum(len(r.report.anomalies) for r in rs)} | "
                    f"{sum(len(r.lost) for r in rs)} | {sum(not r.ok for r in rs)} | "
                    f"{sum(r.seconds for r in rs) / len(rs):.1f} |")
    faults = Counter(w.kind for r in results for w in r.windows)
    failing = Counter(w.kind for r in results if not r.ok for w in r.windows)
    rows += ["", "| nemesis | faults injected | in failed runs |", "| --- | --- | --- |"]
    rows += [f"| {k} | {faults[k]} | {failing[k]} |" for k in KINDS]
    rows.append(f"\n{len(results)} runs in {wall / 60:.1f} minutes; {sum(not r.ok for r in results)} failed")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--time", type=float, default=30.0, help="seconds of load per run (default 30)")
    parser.add_argument("--clients", type=int, default=5)
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument("--out", help="directory for the runs' reports (default ./verify-runs-<time>/)")
    args = parser.parse_args(argv)
    if args.runs < 1 or args.time <= 0 or args.clients < 1:
        print("verify_runs.py: --runs, --time and --clients must be positive", file=sys.stderr)
        return 2
    out = args.out or os.path.abspath(f"verify-runs-{time.strftime('%Y%m%d-%H%M%S')}")
    started = time.monotonic()
    results: list[RunResult] = []
    for k in range(args.runs):
        seed, workload = args.first_seed + k, WORKLOADS[k % len(WORKLOADS)]
        config = RunConfig(workload, args.clients, args.time, seed, KINDS, 3,
                           out=os.path.join(out, f"run-{seed}-{workload}"), quiet=True)
        try:
            result = run(config)
        except (RuntimeError, OSError) as e:  # an ensemble that did not start: say so, go on
            print(f"run {k + 1}/{args.runs} seed {seed} {workload}: did not run: {str(e).splitlines()[0]}", flush=True)
            continue
        results.append(result)
        verdict = "valid" if result.ok else (f"INVALID ({len(result.report.anomalies)} anomalies, "
                                             f"{len(result.lost)} lost-write findings): {config.replay_command()}")
        print(f"run {k + 1}/{args.runs} seed {seed} {workload}: {result.stats.ops} ops, {len(result.windows)} faults, "
              f"{result.seconds:.0f}s, {verdict}", flush=True)
    summary = table(results, time.monotonic() - started)
    print(summary)
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "summary.md"), "w") as f:
        f.write(summary + "\n")
    return 0 if results and all(r.ok for r in results) and len(results) == args.runs else 1


if __name__ == "__main__":
    sys.exit(main())
