"""How fast zkpy.verify checks histories: ops/s of checking, for synthetic register histories.

    python benchmarks/linearizability.py [--ops 100000] [--keys 1000] [--clients 5] [--out FILE]
                                         [--history HISTORY.jsonl ...]

Each history is made by clients that run ops one after another, each op's effect at a random
point inside its interval, results computed by executing the ops in the order of those points
(so every history is linearizable and the checker must search for that order).  Shapes:
- well-formed: short intervals, 1000 znodes: the ensemble's everyday history;
- concurrent: 100 times the clients on a twentieth of the znodes: each op is invoked while ~9
  others of its znode are pending (the overlap column; the search is exponential in it);
- unknown: well-formed, with 1% of the writes unknown (connection loss), never returning.
Reads are held to linearizability (all_reads_linearizable), the checker's hardest setting.
`--history` adds a row per history saved by `zkpy verify` (its DIR/history.jsonl), checked as
the run checks it (reads after a sync, run.py's bounds on the search): recorded histories put
thousands of ops and dozens of unknown outcomes on one znode, which the synthetic ones do not.
"""

from __future__ import annotations

import argparse
import platform
import random
import time

from zkpy.verify import History, Op, check
from zkpy.verify.models import MODELS
from zkpy.verify.run import MAX_EXACT_STATES, MAX_STATES
from zkpy.verify.workloads import FencingWorkload


def history(n: int, keys: int, clients: int, spread: float, unknown: float, seed: int = 1) -> list[Op]:
    rng = random.Random(seed)
    clock = [0.0] * clients
    planned = []  # (point, call, ret, client, key, kind, data, expected)
    for i in range(n):
        c = i % clients
        call = clock[c] + rng.random() * 0.1
        ret = call + 0.05 + rng.random() * spread
        clock[c] = ret
        kind = "get" if rng.random() < 0.5 else "set"
        planned.append((call + rng.random() * (ret - call), call, ret, c, f"/k{rng.randrange(keys)}", kind,
                        f"v{i}", -1 if rng.random() < 0.5 else None))
    planned.sort()
    state: dict[str, tuple[str, int]] = {}
    ops: list[Op] = []
    for k in range(keys):  # every znode exists before the history starts
        state[f"/k{k}"] = ("", 0)
        ops.append(Op(len(ops), "setup", None, "register", "create", f"/k{k}", "", -2.0, -1.0, "ok", 0))
    for _, call, ret, c, key, kind, data, expected in planned:
        data0, version = state[key]
        op = Op(len(ops), f"c{c}", c, "register", kind, key, None, call, ret, "ok")
        if kind == "get":
            op.result = [data0, version]
        else:
            expected = version if expected is None else expected  # half of the sets are CAS
            op.arg = [data, expected]
            if rng.random() < unknown:
                op.ret, op.status = None, "unknown"
                if rng.random() < 0.5:  # half of the unknown writes took effect
                    state[key] = (data, version + 1)
                    op.result = "ConnectionLoss"
                else:
                    continue  # never applied; still in the history, invoked at `call`
            else:
                state[key] = (data, version + 1)
                op.result = version + 1
        ops.append(op)
    ops.sort(key=lambda o: o.call)
    for i, op in enumerate(ops):
        op.id = i
    return ops


def overlap(ops: list[Op]) -> float:
    """Mean number of other ops of its znode still pending when an op is invoked."""
    events = sorted([(o.call, 1, o.key) for o in ops] + [(o.ret, -1, o.key) for o in ops if o.ret is not None])
    active: dict[str, int] = {}
    total = 0
    for _, delta, key in events:
        if delta == 1:
            total += active.get(key, 0)
        active[key] = active.get(key, 0) + delta
    return total / len(ops)


def measure(name: str, ops: list[Op], recorded: bool = False) -> str:
    started = time.perf_counter()
    if recorded:
        report = check(ops, models={**MODELS, **FencingWorkload.models}, shrink=False,
                       max_states=MAX_STATES, max_exact_states=MAX_EXACT_STATES)
    else:
        report = check(ops, all_reads_linearizable=True)
    seconds = time.perf_counter() - started
    assert report.ok, str(report)[:2000]
    return (f"| {name} | {len(ops)} | {report.partitions} | {overlap(ops):.1f} | {seconds:.2f} | "
            f"{len(ops) / seconds:,.0f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ops", type=int, default=100_000)
    parser.add_argument("--keys", type=int, default=1000)
    parser.add_argument("--clients", type=int, default=5)
    parser.add_argument("--out")
    parser.add_argument("--history", action="append", default=[], help="a recorded history (repeatable)")
    args = parser.parse_args()
    rows = [
        measure("well-formed", history(args.ops, args.keys, args.clients, spread=0.1, unknown=0)),
        measure("concurrent", history(args.ops, max(1, args.keys // 20), args.clients * 100, spread=1.0, unknown=0)),
        measure("unknown (1% of writes)", history(args.ops, args.keys, args.clients, spread=0.1, unknown=0.01)),
    ] + [measure(f"recorded: {path}", History.load(path).ops, recorded=True) for path in args.history]
    title = (f"# zkpy.verify checking speed ({platform.python_implementation()} {platform.python_version()}, "
             f"{args.clients} clients; concurrent: {args.clients * 100})")
    text = "\n".join([title, "",
                      "| history | ops | znodes | overlap | seconds | ops/s checked |", "| --- | --- | --- | --- | --- | --- |"] + rows)
    print(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text + "\n")


if __name__ == "__main__":
    main()
