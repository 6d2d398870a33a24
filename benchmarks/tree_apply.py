"""DataTree.apply alone: 100k setData txns on unwatched nodes, best of --repeat (timeit).

    PYTHONPATH=. python benchmarks/tree_apply.py [--repeat 15]

Two trees of 2,000 znodes: one without any watch, one with 2,000 watches on nodes other
than those written (the per-txn cost of the watch tables when nothing fires).
"""

from __future__ import annotations

import argparse
import time
import timeit

from zkpy.protocol.codes import Op
from zkpy.tree.acl import OPEN_ACL_UNSAFE
from zkpy.tree.datatree import DataTree, Txn

N = 100_000
NODES = 1000


class _Watcher:
    identities: list = []


def build(watched_elsewhere: bool) -> tuple[DataTree, list[Txn]]:
    tree = DataTree()
    zxid = 1
    for parent in ("/bench", "/other"):
        tree.apply(Txn(zxid, 0, 1, 0, Op.CREATE, (parent, b"", OPEN_ACL_UNSAFE, 0, 1)))
        zxid += 1
    for i in range(NODES):
        for parent in ("/bench", "/other"):
            tree.apply(Txn(zxid, 0, 1, 0, Op.CREATE, (f"{parent}/n{i}", b"x" * 100, OPEN_ACL_UNSAFE, 0, i + 1)))
            zxid += 1
    if watched_elsewhere:
        w = _Watcher()
        for i in range(NODES):
            tree.data_watches.add(f"/other/n{i}", w)
            tree.child_watches.add(f"/other/n{i}", w)
    txns = [Txn(zxid + k, 0, 1, 0, Op.SET_DATA, (f"/bench/n{k % NODES}", b"y" * 100, k + 1)) for k in range(N)]
    return tree, txns


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=15)
    args = ap.parse_args()
    for label, watched in (("no watch in the tree", False), ("2,000 watches on other nodes", True)):
        tree, txns = build(watched)
        apply = tree.apply

        def run() -> None:
            for txn in txns:
                apply(txn)

        best = min(timeit.repeat(run, number=1, repeat=args.repeat, timer=time.process_time))
        print(f"{label}: {best * 1e3:.1f} ms per {N:,} setData, {best / N * 1e9:.0f} ns/txn")


if __name__ == "__main__":
    main()
