"""The `zkpy` command: `zkpy serve [zoo.cfg] [-Dkey=value ...]`."""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys

from . import logs
from .server.config import ConfigError, load, parse_properties


def _serve(args: argparse.Namespace) -> int:
    try:
        props = parse_properties(args.properties)
        cfg = load(args.config, props)
    except ConfigError as e:
        print(f"zkpy: invalid configuration: {e}", file=sys.stderr)
        return 2
    if args.config is not None and not cfg.data_dir:
        print("zkpy: invalid configuration: dataDir is not set", file=sys.stderr)
        return 2
    if len([s for s in cfg.servers.values() if s.role == "participant"]) > 1:
        import os

        if not os.path.exists(os.path.join(cfg.data_dir, "myid")):
            print(f"zkpy: invalid configuration: {cfg.data_dir}/myid is missing", file=sys.stderr)
            return 2
    from .storage.txnlog import LogCorrupt
    from .server.gc_policy import FreezeOldObjects
    from .server.node import ZkServer

    try:
        server = ZkServer(cfg)
    except LogCorrupt as e:
        print(f"zkpy: cannot start: {e}", file=sys.stderr)
        return 3

    failed: list[str] = []

    async def main() -> None:
        loop = asyncio.get_running_loop()
        collector = FreezeOldObjects()
        collector.start(loop)  # its one full pass over the recovered tree comes before clients do
        try:
            await server.start()
        except OSError as e:
            failed.append(f"cannot listen on {cfg.client_port_address}:{cfg.client_port}: {e.strerror}")
            collector.stop()
            return
        stop = asyncio.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        collector.stop()
        await server.stop()

    _run(main())
    if failed:
        print(f"zkpy: {failed[0]}", file=sys.stderr)
        return 1
    return 0


def _run(coro) -> None:
    try:
        import uvloop

        uvloop.run(coro)
    except ImportError:  # pragma: no cover - uvloop is a dependency, but keep the server usable without it
        asyncio.run(coro)


def _purge(args: argparse.Namespace) -> int:
    from .storage.recovery import purge

    for path in purge(args.data_dir, args.data_log_dir or args.data_dir, retain=max(3, args.count)):
        print(f"removed {path}")
    return 0


def _dump_log(args: argparse.Namespace) -> int:
    from .storage.txnlog import LogCorrupt, read_segment

    try:
        for txn in read_segment(args.file, is_last=True):
            print(f"zxid=0x{txn.zxid:x} time={txn.time} session=0x{txn.session:x} cxid={txn.cxid} "
                  f"type={_op_name(txn.type)} {_short(txn.args)}")
    except LogCorrupt as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


def _dump_snapshot(args: argparse.Namespace) -> int:
    from .storage.snapshot import SnapshotInvalid, load_snapshot
    from .protocol.codes import owner_kind

    try:
        tree = load_snapshot(args.file)
    except SnapshotInvalid as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(f"zxid=0x{tree.last_zxid:x} nodes={len(tree.nodes)} sessions={len(tree.sessions)}")
    for path in sorted(tree.nodes):
        n = tree.nodes[path]
        owner = f" owner=0x{n.owner & 0xFFFFFFFFFFFFFFFF:x}({owner_kind(n.owner)})" if n.owner else ""
        print(f"{path}  czxid=0x{n.czxid:x} mzxid=0x{n.mzxid:x} pzxid=0x{n.pzxid:x} version={n.version} "
              f"cversion={n.cversion} aversion={n.aversion} dataLength={len(n.data or b'')}{owner}")
    for sid, timeout in sorted(tree.sessions.items()):
        print(f"session 0x{sid:x} timeout={timeout}")
    return 0


def _check(args: argparse.Namespace) -> int:
    from .storage.txnlog import LogCorrupt
    from .storage.recovery import recover

    try:
        tree = recover(args.data_dir, args.data_log_dir or args.data_dir)
    except LogCorrupt as e:
        print(f"corrupt: {e}", file=sys.stderr)
        return 1
    print(f"ok: last zxid 0x{tree.last_zxid:x}, {len(tree.nodes)} nodes, {len(tree.sessions)} sessions, "
          f"digest {tree.digest()}")
    return 0


def _simulate(args: argparse.Namespace) -> int:
    """Seeded simulations of real members; stops at (and prints) the first failing seed, which
    replays exactly with --seed."""
    import contextlib
    import time

    from .simulation.broken import broken_build
    from .simulation.simulator import InvariantBroken, Simulator, quiet_logs, summary

    count = args.schedules if args.schedules is not None else (1 if args.seed is not None else 100)
    first = args.seed if args.seed is not None else 0
    started = last_line = time.monotonic()
    failed: list[int] = []
    done = []
    with quiet_logs(), (broken_build(args.broken) if args.broken else contextlib.nullcontext()):
        for n, seed in enumerate(range(first, first + count), 1):
            sim = Simulator(seed, args.config)
            try:
                sim.run(args.steps)
            except InvariantBroken as e:
                failed.append(seed)
                print(f"FAIL {e}", flush=True)
                extra = f" --broken {args.broken}" if args.broken else ""
                print(f"replay: zkpy simulate --seed {seed} --config {args.config} --steps {args.steps}{extra}",
                      flush=True)
                if not args.keep_going:
                    break
            done.append(sim)
            if time.monotonic() - last_line >= 10 or n % 1000 == 0:
                last_line = time.monotonic()
                print(f"{n}/{count} schedules ({args.config}), {len(failed)} failed, "
                      f"{last_line - started:.0f}s", flush=True)
    totals = summary(done)
    print(f"simulated {len(done) + (1 if failed and not args.keep_going else 0)} schedules of {args.config} "
          f"(seeds {first}..{first + count - 1}, {args.steps} faulty steps each) in "
          f"{time.monotonic() - started:.0f}s: {len(failed)} failed"
          + (f", first failing seed {failed[0]}" if failed else "") + f"; {totals}", flush=True)
    return 1 if failed else 0


def _ensemble(args: argparse.Namespace) -> int:
    """A local ensemble on free loopback ports and temp dirs, until Ctrl-C."""
    import time

    from .testing.ensemble import Ensemble

    def interrupt(*_: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)
    ens = Ensemble(args.n, tick_time=args.tick_time)
    try:
        ens.start()
        print(ens.connect_string, flush=True)
        print(f"leader: server {ens.leader()}; data and logs in {ens.base}; Ctrl-C stops all", file=sys.stderr)
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        ens.stop()
    return 0


def _java_shim(args: argparse.Namespace) -> int:
    from .testing.java_shim import write_shim

    path = write_shim(args.dir)
    print(path)
    print(f"put {args.dir} first in PATH: its java runs QuorumPeerMain as zkpy, other java commands as before",
          file=sys.stderr)
    return 0


def _op_name(op: int) -> str:
    from .protocol.codes import Op

    try:
        return Op(op).name.lower()
    except ValueError:
        return str(op)


def _short(args: tuple) -> str:
    text = repr(args)
    return text if len(text) <= 200 else text[:197] + "..."


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(prog="zkpy", description="A ZooKeeper-compatible coordination server.")
    parser.add_argument("--log-level", default="INFO")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run a server from a zoo.cfg (standalone on 127.0.0.1:2181 without one)")
    serve.add_argument("config", nargs="?", help="path to zoo.cfg")
    serve.add_argument("properties", nargs="*", help="Java system properties as -Dkey=value")
    p = sub.add_parser("purge", help="delete old snapshots and the log segments only they need")
    p.add_argument("data_dir")
    p.add_argument("--data-log-dir")
    p.add_argument("-n", "--count", type=int, default=3, help="snapshots to keep (at least 3)")
    p = sub.add_parser("dump-log", help="print the txns of one log segment")
    p.add_argument("file")
    p = sub.add_parser("dump-snapshot", help="print the nodes and sessions of one snapshot")
    p.add_argument("file")
    p = sub.add_parser("check", help="recover a data dir read-only-ish (cuts a torn tail) and report")
    p.add_argument("data_dir")
    p.add_argument("--data-log-dir")
    p = sub.add_parser("ensemble", help="run a local ensemble of N servers and print its connect string")
    p.add_argument("-n", type=int, default=3)
    p.add_argument("--tick-time", type=int, default=2000)
    p = sub.add_parser("simulate", help="run seeded simulations of real members (simulated disk, network, "
                                          "clock and clients) and check their invariants")
    p.add_argument("--schedules", type=int, help="how many seeds (default 100; 1 with --seed)")
    p.add_argument("--seed", type=int, help="the first seed (alone: replay this one seed)")
    p.add_argument("--config", choices=["3+1", "5", "standalone"], default="3+1")
    p.add_argument("--steps", type=int, default=300, help="faulty steps before everything heals")
    p.add_argument("--keep-going", action="store_true", help="do not stop at the first failing seed")
    p.add_argument("--broken", choices=["early-durable", "reuse-epoch"],
                   help="a test-only broken build, to see the simulation catch it")
    p = sub.add_parser("java-shim", help="write DIR/java, which runs `java ... QuorumPeerMain zoo.cfg` as "
                                           "`zkpy serve` (for test harnesses that start ZooKeeper)")
    p.add_argument("dir")
    # -D arguments look like options to argparse: split them off first.
    props = [a for a in argv if a.startswith("-D")]
    rest = [a for a in argv if not a.startswith("-D")]
    args = parser.parse_args(rest)
    args.properties = props
    logs.configure(args.log_level)
    commands = {"serve": _serve, "purge": _purge, "dump-log": _dump_log, "dump-snapshot": _dump_snapshot,
                "check": _check, "simulate": _simulate, "ensemble": _ensemble, "java-shim": _java_shim}
    return commands[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
