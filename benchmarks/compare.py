"""Before/after: one benchmark of zkpy at two commits, alternating, reported as paired ratios.

    python benchmarks/compare.py BASE [--head REV] [--rounds N] [--name NAME] -- SCRIPT [ARG ...]
    python benchmarks/compare.py 7d4e431 --rounds 6 -- run.py --only zkpy --ops get,set,create
    python benchmarks/compare.py HEAD~1 --rounds 4 -- ensemble.py --only zkpy --rounds 0 --repeat 1

A hot-path change carries before/after figures, and this machine's speed drifts by more
than such a change moves them (other tenants: the 'steal' column).  So the two builds run
in turn, ABBA (A B, B A, A B, ...) so that a drift hits both alike, `--rounds` times each;
every round is one whole run of SCRIPT (`benchmarks/run.py` or `benchmarks/ensemble.py`,
whatever ARGs they take; `--only zkpy` keeps Apache ZooKeeper out of it) from a git worktree
of each build, with PYTHONPATH on that tree.  BASE and `--head` are git revisions; `--head`
defaults to this checkout as it is, uncommitted changes included.

The report gives per op: each build's median ops/s, p99 and server CPU per request (the
server processes' CPU over the measured interval divided by the requests: it leaves out
how the load generator, which shares the 2 cores, fared), and the ratios head/base of each
round's pair (median, min-max).  Written to benchmarks/results/<date>-<name>.md.
"""

from __future__ import annotations

import argparse
import datetime
import os
import re
import statistics
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)

from run import machine_info, write_results  # noqa: E402

# `| get | zkpy | 39472 | 9.51 | 29.02 | 40.81 | 0 | 62% | 133% | ...`: run.py's and ensemble.py's table rows
ROW = re.compile(r"^\| (\w+) \| zkpy \| (\d+) \| [\d.]+ \| ([\d.]+) \| [\d.]+ \| \d+ \| (\d+)% \|", re.M)


def steal_jiffies() -> int:
    """Time the hypervisor gave this machine's CPUs to others, since boot (/proc/stat)."""
    with open("/proc/stat") as f:
        return int(f.readline().split()[8])


def one_run(tree: str, script: list[str], timeout: float) -> tuple[dict[str, tuple[float, float, float]], int]:
    """One whole run of the benchmark in `tree`: {op: (ops/s, p99 ms, server CPU us per request)}, steal."""
    env = dict(os.environ, PYTHONPATH=tree)
    before = steal_jiffies()
    out = subprocess.run([sys.executable, os.path.join(tree, "benchmarks", script[0]), *script[1:],
                          "--name", "compare-scratch"], cwd=tree, env=env, capture_output=True, text=True,
                         timeout=timeout)
    steal = steal_jiffies() - before
    for name in os.listdir(os.path.join(tree, "benchmarks", "results")):
        if name.endswith("-compare-scratch.md"):  # the run's own report: the rows above are what counts
            os.remove(os.path.join(tree, "benchmarks", "results", name))
    rows = {m[1]: (float(m[2]), float(m[3]), float(m[4]) * 1e4 / float(m[2])) for m in ROW.finditer(out.stdout)}
    if out.returncode or not rows:
        raise SystemExit(f"compare: {script[0]} in {tree} failed (exit {out.returncode}):\n{out.stdout[-2000:]}"
                         f"{out.stderr[-2000:]}")
    return rows, steal


def _describe(rev: str | None) -> str:
    args = ["describe", "--always", "--dirty"] if rev is None else ["rev-parse", "--short", rev]
    return subprocess.run(["git", "-C", ROOT, *args], capture_output=True, text=True, check=True).stdout.strip()


def _spread(values: list[float]) -> str:
    return f"{statistics.median(values):.3f} ({min(values):.3f}-{max(values):.3f})"


def report(runs: dict[str, list[dict]]) -> list[str]:
    lines = ["| op | base ops/s | head ops/s | ops/s head/base | base p99 ms | head p99 ms | p99 head/base "
             "| base CPU us/req | head CPU us/req | CPU/req head/base |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for op in runs["base"][0]:
        cols = []
        pairs = [(b[op], h[op]) for b, h in zip(runs["base"], runs["head"])]
        for i, fmt in ((0, "{:.0f}"), (1, "{:.2f}"), (2, "{:.1f}")):
            base = statistics.median(b[i] for b, _ in pairs)
            head = statistics.median(h[i] for _, h in pairs)
            cols += [fmt.format(base), fmt.format(head), _spread([h[i] / b[i] for b, h in pairs])]
        lines.append(f"| {op} | " + " | ".join(cols) + " |")
    lines += ["", "Each round, in run order (ops/s; p99 ms):", ""]
    for k, (b, h) in enumerate(zip(runs["base"], runs["head"])):
        lines.append(f"- round {k + 1}: " + "; ".join(
            f"{op} {b[op][0]:.0f} / {h[op][0]:.0f} ({b[op][1]:.1f} / {h[op][1]:.1f})" for op in b))
    return lines


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("base", help="git revision of the build before")
    p.add_argument("--head", help="git revision of the build after (default: this checkout, uncommitted changes too)")
    p.add_argument("--rounds", type=int, default=4, help="runs of each build (default 4)")
    p.add_argument("--timeout", type=float, default=900, help="seconds one run may take (default 900)")
    p.add_argument("--name", default="compare", help="results file: benchmarks/results/<date>-<name>.md")
    p.epilog = "after --: run.py or ensemble.py and its arguments"
    argv = sys.argv[1:]
    cut = argv.index("--") if "--" in argv else len(argv)
    args, script = p.parse_args(argv[:cut]), argv[cut + 1:]
    if not script or script[0] not in ("run.py", "ensemble.py"):
        p.error("give the benchmark after --: run.py or ensemble.py and its arguments")
    names = {"base": _describe(args.base), "head": _describe(args.head)}
    started = datetime.datetime.now(datetime.timezone.utc)
    runs: dict[str, list[dict]] = {"base": [], "head": []}
    steal: dict[str, int] = {"base": 0, "head": 0}
    with tempfile.TemporaryDirectory(prefix="zkpy-compare-") as tmp:
        trees = {"base": os.path.join(tmp, "base"), "head": ROOT}
        revs = {"base": args.base, "head": args.head}
        try:
            for build in ("base", "head"):
                if revs[build] is not None:
                    trees[build] = os.path.join(tmp, build)
                    subprocess.run(["git", "-C", ROOT, "worktree", "add", "--detach", "-q", trees[build], revs[build]],
                                   check=True)
            for k in range(args.rounds):
                for build in (("base", "head") if k % 2 == 0 else ("head", "base")):
                    rows, stolen = one_run(trees[build], script, args.timeout)
                    runs[build].append(rows)
                    steal[build] += stolen
                    print(f"round {k + 1} {build} ({names[build]}): " + "; ".join(
                        f"{op} {v[0]:.0f} ops/s p99 {v[1]:.2f} ms {v[2]:.1f} us/req" for op, v in rows.items()),
                        flush=True)
        finally:
            for build in ("base", "head"):
                if trees[build] != ROOT and os.path.isdir(trees[build]):
                    subprocess.run(["git", "-C", ROOT, "worktree", "remove", "--force", trees[build]], check=False)
    hz = os.sysconf("SC_CLK_TCK")
    header = [f"# Before/after: zkpy {names['base']} (base) vs {names['head']} (head)", ""] + machine_info() + [
        f"- command: `python benchmarks/compare.py {' '.join(sys.argv[1:])}`",
        f"- {args.rounds} rounds of each build, in turn ABBA from {started:%H:%M} UTC; each round one whole "
        f"`benchmarks/{' '.join(script)}`; the ratio columns are head/base of each round's pair: median (min-max)",
        f"- CPU us/req: the server processes' CPU during the measured interval per request; steal (CPU time this "
        f"machine's hypervisor gave to others): base {steal['base'] / hz:.1f} s, head {steal['head'] / hz:.1f} s",
        ""]
    lines = report(runs)
    print("\n".join(lines))
    write_results("\n".join(header + lines) + "\n", args.name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
