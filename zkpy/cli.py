"""The `zkpy` command: `zkpy serve [zoo.cfg] [-Dkey=value ...]`, `zkpy shell -server host:port`, ..."""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys

from . import __version__, logs
from .server.config import ConfigError, check_data_dir, load, member_id, parse_properties

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


class BadInput(Exception):
    """Wrong input to a tool: one line on stderr and exit code 2."""


def _serve(args: argparse.Namespace) -> int:
    try:
        props = parse_properties(args.properties)
        cfg = load(args.config, props)
        if args.config is not None and not cfg.data_dir:
            raise ConfigError(f"{args.config}: dataDir is not set: add dataDir=/path/to/data")
        if len([s for s in cfg.servers.values() if s.role == "participant"]) > 1:
            member_id(cfg)
        check_data_dir(cfg)
    except ConfigError as e:
        print(f"zkpy: invalid configuration: {e}", file=sys.stderr)
        return 2
    from .storage.txnlog import LogCorrupt
    from .server.gc_policy import FreezeOldObjects
    from .server.node import ZkServer

    try:
        server = ZkServer(cfg)
    except ConfigError as e:  # found while building the server: the TLS key stores, say
        print(f"zkpy: invalid configuration: {e}", file=sys.stderr)
        return 2
    except LogCorrupt as e:
        print(f"zkpy: cannot start: {e}", file=sys.stderr)
        return 3
    except OSError as e:
        print(f"zkpy: cannot start: {e.filename or cfg.data_dir}: {e.strerror or e}", file=sys.stderr)
        return 1

    failed: list[str] = []
    faults = None
    if args.faults:
        from .server.faultsfile import FaultsFile

        faults = FaultsFile(server.fault_table, args.faults)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        if faults is not None:
            faults.start(loop, server.member.tick_interval_ms / 1000.0)  # before the first client
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
        if faults is not None:
            faults.stop()
        collector.stop()
        await server.stop()

    _run(main())
    if failed:
        print(f"zkpy: {failed[0]}", file=sys.stderr)
        return 1
    return 0


def _zookeeper_log(props: list[str]) -> tuple[str | None, str | None]:
    """(level, file) from ZooKeeper's log4j properties, as zkServer.sh passes them: the file
    `${zookeeper.log.dir}/${zookeeper.log.file}` when `zookeeper.root.logger` (e.g. "INFO,ROLLINGFILE")
    names the ROLLINGFILE appender, as ZooKeeper's log4j.properties has it."""
    values = {key: value for key, _, value in (p[2:].partition("=") for p in props)}
    level, *appenders = [part.strip().upper() for part in values.get("zookeeper.root.logger", "").split(",")]
    level = {"TRACE": "DEBUG", "WARN": "WARNING", "FATAL": "CRITICAL"}.get(level, level)
    file = None
    if "ROLLINGFILE" in appenders:
        file = os.path.join(values.get("zookeeper.log.dir", "."), values.get("zookeeper.log.file", "zookeeper.log"))
    return (level if level in LOG_LEVELS else None), file


def _run(coro) -> None:
    try:
        import uvloop

        uvloop.run(coro)
    except ImportError:  # pragma: no cover - uvloop is a dependency, but keep the server usable without it
        asyncio.run(coro)


def _existing_dir(path: str) -> str:
    """A zkpy dataDir (or dataLogDir): a directory with ZooKeeper's version-2/ in it."""
    import os

    if not os.path.isdir(path):
        what = "is not a directory" if os.path.exists(path) else "does not exist"
        raise BadInput(f"{path} {what}: give the dataDir of a zkpy server")
    if not os.path.isdir(os.path.join(path, "version-2")):
        raise BadInput(f"{path} has no version-2 directory, so it is not a zkpy dataDir: give the dataDir "
                       "of a zkpy server")
    return path


def _readable_file(path: str) -> str:
    import os

    if not os.path.isfile(path):
        what = "is not a file" if os.path.exists(path) else "does not exist"
        raise BadInput(f"{path} {what}")
    return path


def _purge(args: argparse.Namespace) -> int:
    from .storage.recovery import purge

    if args.count < 3:
        raise BadInput(f"-n {args.count}: purge keeps at least 3 snapshots (as ZooKeeper's PurgeTxnLog); "
                       "use -n 3 or more")
    _existing_dir(args.data_dir)
    if args.data_log_dir:
        _existing_dir(args.data_log_dir)
    for path in purge(args.data_dir, args.data_log_dir or args.data_dir, retain=args.count):
        print(f"removed {path}")
    return 0


def _dump_log(args: argparse.Namespace) -> int:
    from .storage.txnlog import LogCorrupt, read_segment

    _readable_file(args.file)
    try:
        for txn in read_segment(args.file, is_last=True):
            print(f"zxid=0x{txn.zxid:x} time={txn.time} session=0x{txn.session:x} cxid={txn.cxid} "
                  f"type={_op_name(txn.type)} {_short(txn.args)}")
    except LogCorrupt as e:
        print(f"zkpy dump-log: {e}", file=sys.stderr)
        return 1
    return 0


def _dump_snapshot(args: argparse.Namespace) -> int:
    from .storage.snapshot import SnapshotInvalid, load_snapshot
    from .protocol.codes import owner_kind

    _readable_file(args.file)
    try:
        tree = load_snapshot(args.file)
    except SnapshotInvalid as e:
        print(f"zkpy dump-snapshot: {e}", file=sys.stderr)
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

    _existing_dir(args.data_dir)
    if args.data_log_dir:
        _existing_dir(args.data_log_dir)
    try:
        tree = recover(args.data_dir, args.data_log_dir or args.data_dir, repair=False)  # a check changes nothing
    except LogCorrupt as e:
        print(f"corrupt: {e}", file=sys.stderr)
        return 1
    print(f"ok: last zxid 0x{tree.last_zxid:x}, {len(tree.nodes)} nodes, {len(tree.sessions)} sessions, "
          f"digest {tree.digest()}")
    return 0


def _import(args: argparse.Namespace) -> int:
    """An Apache ZooKeeper dataDir converted into a zkpy dataDir (see zkpy/storage/importer.py)."""
    from .storage.importer import CannotImport, import_data_dir
    from .storage.zookeeper_format import ZooKeeperFormatError

    try:
        done = import_data_dir(args.zk_data_dir, args.zkpy_data_dir, args.zk_data_log_dir)
    except (CannotImport, ZooKeeperFormatError) as e:
        raise BadInput(str(e)) from None
    except OSError as e:
        raise BadInput(f"{e.filename}: {e.strerror}") from None
    tree = done.tree
    print(f"imported {done.snapshot or 'no snapshot'} and {done.replayed} txns after it: last zxid "
          f"0x{tree.last_zxid:x}, {len(tree.nodes)} nodes, {len(tree.sessions)} sessions; wrote {done.written} "
          f"(digest {done.digest}); `zkpy check {args.zkpy_data_dir}` reads it back")
    return 0


def _fuzz(args: argparse.Namespace) -> int:
    from .testing import fuzz

    ports = ["client", "peer"] if args.port == "both" else [args.port]
    return fuzz.command(args.frames, ports, args.seed, args.workers, args.save, args.replay, args.broken)


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


def _verify(args: argparse.Namespace) -> int:
    from .verify.command import main as verify

    return verify(args)


def _ensemble(args: argparse.Namespace) -> int:
    """A local ensemble on loopback ports and a temp dir (or --keep DIR), until Ctrl-C or a
    signal; its members die with the command however it dies (see testing/reaper.py)."""
    import time

    from .testing.ensemble import Ensemble

    if args.n < 1:
        raise BadInput(f"-n {args.n}: an ensemble has at least one server (-n 1 runs a standalone one)")
    if args.base_port is not None and not 1024 <= args.base_port <= 65535 - 3 * args.n:
        raise BadInput(f"--base-port {args.base_port}: the {3 * args.n} ports from it must lie in 1024..65535")

    def interrupt(*_: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)
    signal.signal(signal.SIGHUP, interrupt)
    ens = Ensemble(args.n, tick_time=args.tick_time, base_port=args.base_port, keep=args.keep)
    reported: set[int] = set()
    try:
        for sid in ens.ids:
            ens.start_server(sid)
        ens.wait_serving(fail_on_exit=True)
        print(ens.connect_string, flush=True)
        where = f"leader: server {ens.leader()}; " if args.n > 1 else "standalone; "
        print(f"{where}data and logs in {ens.base}; Ctrl-C stops all", file=sys.stderr, flush=True)
        while True:
            for sid, proc in ens.procs.items():
                code = proc.poll()
                if code is not None and sid not in reported:
                    reported.add(sid)
                    log_path = f"{ens.base}/server{sid}/server.log"
                    print(f"zkpy ensemble: server {sid} exited with code {code} (its log: {log_path})",
                          file=sys.stderr, flush=True)
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    except RuntimeError as e:  # members that exited while starting: their codes and log tails
        print(f"zkpy ensemble: {e}", file=sys.stderr)
        return 1
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


def _shell(args: argparse.Namespace) -> int:
    """zkCli's command line: `zkpy shell [-server host:port] [-timeout ms] [-c "cmd"] [cmd args...]`."""
    try:
        import kazoo  # noqa: F401
    except ImportError:
        raise BadInput("needs kazoo: pip install 'zkpy[shell]' (kazoo and prompt_toolkit)") from None
    from .shell import run

    try:
        timeout = int(args.timeout)
    except ValueError:
        raise BadInput(f"-timeout {args.timeout}: give the session timeout in milliseconds") from None
    command = [args.c] if args.c is not None else args.cmd
    return run(args.server, timeout, command, read_only=args.r)


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
    # --log-level is taken before or after the command (`zkpy serve cfg --log-level DEBUG`).
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--log-level", type=str.upper, choices=LOG_LEVELS, default=argparse.SUPPRESS,
                        help="DEBUG, INFO (default), WARNING, ERROR or CRITICAL")
    common.add_argument("--log-format", choices=logs.FORMATS, default=argparse.SUPPRESS,
                        help="console (default: timestamp [level] event key=value) or json (one object a line)")
    common.add_argument("--log-file", metavar="PATH", default=argparse.SUPPRESS,
                        help="append the log to PATH instead of stderr (as -Dzookeeper.root.logger=INFO,ROLLINGFILE "
                             "with -Dzookeeper.log.dir and -Dzookeeper.log.file)")
    parser = argparse.ArgumentParser(prog="zkpy", description="A ZooKeeper-compatible coordination server.",
                                     parents=[common])
    parser.add_argument("--version", action="version", version=f"zkpy {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    def command(name: str, **kwargs: object) -> argparse.ArgumentParser:
        return sub.add_parser(name, parents=[common], **kwargs)  # type: ignore[arg-type]

    serve = command("serve", help="run a server from a zoo.cfg (standalone on 127.0.0.1:2181 without one)")
    serve.add_argument("config", nargs="?", help="path to zoo.cfg")
    serve.add_argument("properties", nargs="*", help="Java system properties as -Dkey=value")
    serve.add_argument("--faults", metavar="FILE", help="inject the faults listed in this JSON file, re-read "
                                                        "when it changes (see zkpy/server/faultsfile.py)")
    p = command("purge", help="delete old snapshots and the log segments only they need")
    p.add_argument("data_dir")
    p.add_argument("--data-log-dir")
    p.add_argument("-n", "--count", type=int, default=3, help="snapshots to keep (at least 3)")
    p = command("dump-log", help="print the txns of one log segment")
    p.add_argument("file")
    p = command("dump-snapshot", help="print the nodes and sessions of one snapshot")
    p.add_argument("file")
    p = command("check", help="recover a data dir read-only-ish (cuts a torn tail) and report")
    p.add_argument("data_dir")
    p.add_argument("--data-log-dir")
    p = command("import", help="convert an Apache ZooKeeper 3.x dataDir (snapshots and txn logs) into a "
                               "new zkpy dataDir")
    p.add_argument("zk_data_dir", help="the ZooKeeper server's dataDir (stopped)")
    p.add_argument("zkpy_data_dir", help="a new or empty directory for the zkpy server's dataDir")
    p.add_argument("--zk-data-log-dir", help="the ZooKeeper server's dataLogDir, if not its dataDir")
    p = command("ensemble", help="run a local ensemble of N servers and print its connect string")
    p.add_argument("-n", type=int, default=3, help="servers (default 3; 1 runs a standalone server)")
    p.add_argument("--tick-time", type=int, default=2000)
    p.add_argument("--base-port", type=int, help="client ports from here, then quorum, then election ports "
                                                  "(default: a free block below the ephemeral range)")
    p.add_argument("--keep", metavar="DIR", help="put the data and logs in DIR and keep them")
    p = command("simulate", help="run seeded simulations of real members (simulated disk, network, "
                                          "clock and clients) and check their invariants")
    p.add_argument("--schedules", type=int, help="how many seeds (default 100; 1 with --seed)")
    p.add_argument("--seed", type=int, help="the first seed (alone: replay this one seed)")
    p.add_argument("--config", choices=["3+1", "5", "standalone"], default="3+1")
    p.add_argument("--steps", type=int, default=300, help="faulty steps before everything heals")
    p.add_argument("--keep-going", action="store_true", help="do not stop at the first failing seed")
    p.add_argument("--broken", choices=["early-durable", "reuse-epoch", "lose-history"],
                   help="a test-only broken build, to see the simulation catch it")
    p = command("fuzz", help="fuzz a local server's client port and an ensemble's quorum ports over real sockets "
                             "and check that nothing is hurt (see zkpy/testing/fuzz.py)")
    p.add_argument("--frames", type=int, default=100_000, help="frames to send in all (default 100000)")
    p.add_argument("--port", choices=["client", "peer", "both"], default="both")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--workers", type=int, default=8, help="connections in parallel (default 8)")
    p.add_argument("--save", metavar="DIR", help="where the cases in flight at a failure go (default .)")
    p.add_argument("--replay", metavar="DIR", help="send the cases saved in DIR again, one at a time")
    p.add_argument("--broken", choices=["raise", "crash", "leak", "stall"],
                   help="fuzz a deliberately broken build, to see the oracles catch it")
    p = command("java-shim", help="write DIR/java, which runs `java ... QuorumPeerMain zoo.cfg` as "
                                           "`zkpy serve` (for test harnesses that start ZooKeeper)")
    p.add_argument("dir")
    p = command("shell", help="zkCli without a JVM: zkCli's commands and output, interactive (history, Tab "
                              "completion) or from stdin / -c / trailing arguments")
    p.add_argument("-server", default="localhost:2181", help="host:port[,host:port...] (default localhost:2181)")
    p.add_argument("-timeout", default="30000", help="session timeout in ms (default 30000)")
    p.add_argument("-r", action="store_true", help="read-only: accept a read-only server (as zkCli's -r)")
    p.add_argument("-c", metavar="CMD", help="run this one command line and exit with its code")
    p.add_argument("cmd", nargs=argparse.REMAINDER, help="a command and its arguments, as zkCli.sh takes them")
    from .verify.command import add_parser as add_verify

    add_verify(sub, [common])
    # -D arguments look like options to argparse: split them off first.
    props = [a for a in argv if a.startswith("-D")]
    rest = [a for a in argv if not a.startswith("-D")]
    args = parser.parse_args(rest)
    args.properties = props
    zk_level, zk_file = _zookeeper_log(props)
    log_file = getattr(args, "log_file", None) or zk_file
    try:
        logs.configure(getattr(args, "log_level", None) or zk_level or "INFO", getattr(args, "log_format", "console"),
                       log_file)
    except OSError as e:
        print(f"zkpy: cannot write the log file {log_file}: {e.strerror}", file=sys.stderr)
        return 2
    commands = {"serve": _serve, "purge": _purge, "dump-log": _dump_log, "dump-snapshot": _dump_snapshot,
                "check": _check, "import": _import, "simulate": _simulate, "ensemble": _ensemble,
                "java-shim": _java_shim, "shell": _shell, "fuzz": _fuzz, "verify": _verify}
    if args.command in ("dump-log", "dump-snapshot", "check", "purge"):
        # Tools that print: `zkpy dump-log FILE | head` ends quietly, as cat does.
        signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    try:
        return commands[args.command](args)
    except BadInput as e:
        print(f"zkpy {args.command}: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
