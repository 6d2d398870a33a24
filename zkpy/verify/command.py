"""`zkpy verify`: its options, their checks (one line and exit code 2 when wrong), and the run.

    zkpy verify --workload register --clients 5 --time 30 --seed 7 --nemesis kill,partition
    zkpy verify --apache ...                  # a local Apache ZooKeeper 3.8 ensemble
    zkpy verify --connect h1:2181,h2:2181,h3:2181 --kill-cmd 'ssh {host} pkill -9 java' --restart-cmd ...
    zkpy verify --broken ack-before-quorum    # a deliberately broken zkpy build, to see it caught
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from typing import NoReturn

from .broken import BUILDS
from .nemesis import KINDS
from .workloads import WORKLOADS

COMMAND_OPTIONS = ("kill", "restart", "pause", "resume", "isolate", "heal")


class UsageError(Exception):
    """Wrong options: the caller prints one line and exits 2."""


def add_parser(sub: argparse._SubParsersAction, parents: list[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("verify", parents=parents, help="run clients against an ensemble under a seeded nemesis, "
                                                      "record and check the history (linearizability, lost writes)",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--workload", choices=WORKLOADS, default="register")
    p.add_argument("--clients", type=int, default=5, help="kazoo clients (default 5)")
    p.add_argument("--time", type=float, default=30.0, help="seconds of load (default 30)")
    p.add_argument("--seed", type=int, help="the nemesis schedule's and the clients' seed (default: from the clock)")
    p.add_argument("--nemesis", default=None, help=f"comma-separated from {','.join(KINDS)}, or 'none' "
                                                   "(default: every kind the target supports)")
    p.add_argument("--size", type=int, choices=[3, 5], default=3, help="members of the local ensemble")
    p.add_argument("--apache", action="store_true", help="a local Apache ZooKeeper 3.8 ensemble instead of zkpy")
    p.add_argument("--connect", metavar="HOST:PORT,...", help="an ensemble of your own; the nemesis is then the "
                                                               "--*-cmd commands")
    for name in COMMAND_OPTIONS:
        p.add_argument(f"--{name}-cmd", metavar="CMD", help=f"shell command to {name} a member ({{member}} "
                                                           "1-based in --connect order, {host}, {port}; "
                                                           "--isolate-cmd also {members})")
    p.add_argument("--broken", choices=sorted(BUILDS), help="run a deliberately broken zkpy build")
    p.add_argument("--out", metavar="DIR", help="report directory (default ./verify-SEED-TIME/)")
    p.add_argument("--quiet", action="store_true", help="print only the verdict and the report's path")
    p.error = _one_line_error(p)  # type: ignore[method-assign]


def _one_line_error(parser: argparse.ArgumentParser):
    def error(message: str) -> NoReturn:
        print(f"zkpy verify: {message} (see zkpy verify --help)", file=sys.stderr)
        sys.exit(2)

    return error


def config_from(args: argparse.Namespace):
    """A RunConfig from the parsed options, or UsageError with what to change."""
    from .runconfig import RunConfig

    if args.clients < 1:
        raise UsageError(f"--clients {args.clients}: give at least 1")
    if not 0 < args.time <= 24 * 3600:
        raise UsageError(f"--time {args.time:g}: give a number of seconds above 0")
    if args.apache and args.connect:
        raise UsageError("--apache starts a local ensemble and --connect uses yours: give one of them")
    if args.broken and (args.apache or args.connect):
        raise UsageError("--broken runs a broken zkpy build in a local ensemble: drop --apache/--connect")
    commands = {n: getattr(args, f"{n}_cmd") for n in COMMAND_OPTIONS if getattr(args, f"{n}_cmd")}
    if commands and not args.connect:
        raise UsageError(f"--{next(iter(commands))}-cmd is for --connect: a local ensemble's faults are built in")
    connect = _addresses(args.connect) if args.connect else None
    available = _available(args, commands)
    if args.nemesis is None:
        kinds = available
    elif args.nemesis.strip() == "none":
        kinds = ()
    else:
        kinds = tuple(dict.fromkeys(k.strip() for k in args.nemesis.split(",") if k.strip()))
        for kind in kinds:
            if kind not in KINDS:
                raise UsageError(f"--nemesis {args.nemesis}: unknown kind {kind!r} (kinds: {', '.join(KINDS)}, none)")
            if kind not in available:
                raise UsageError(f"--nemesis {kind}: {_why_not(kind, args)}")
    if args.out and os.path.exists(args.out) and not os.path.isdir(args.out):
        raise UsageError(f"--out {args.out} is a file: give a directory")
    seed = args.seed if args.seed is not None else int(time.time()) % 100_000
    return RunConfig(args.workload, args.clients, args.time, seed, kinds, args.size, args.apache, connect,
                     commands, args.broken, args.out, args.quiet)


def _addresses(text: str) -> list[str]:
    out = []
    for part in text.split(","):
        host, _, port = part.strip().rpartition(":")
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise UsageError(f"--connect {text}: {part.strip()!r} is not HOST:PORT")
        out.append(f"{host}:{port}")
    return out


def _available(args: argparse.Namespace, commands: dict[str, str]) -> tuple[str, ...]:
    if args.connect:
        from .nemesis import CommandCluster

        return tuple(k for k, needs in CommandCluster.COMMANDS.items() if all(n in commands for n in needs))
    return tuple(k for k in KINDS if not (args.apache and k == "torn-tail"))


def _why_not(kind: str, args: argparse.Namespace) -> str:
    if kind == "torn-tail" and args.apache:
        return "tears zkpy's own log files; Apache ZooKeeper's log recovery is not tested here (leave it out)"
    if kind == "torn-tail":
        return "needs the members' data dirs: only with a local ensemble"
    from .nemesis import CommandCluster

    needs = CommandCluster.COMMANDS[kind]
    return f"with --connect it needs {' and '.join(f'--{n}-cmd' for n in needs)}"


def main(args: argparse.Namespace) -> int:
    try:
        config = config_from(args)
    except UsageError as e:
        print(f"zkpy verify: {e}", file=sys.stderr)
        return 2
    try:
        import kazoo  # noqa: F401
        import matplotlib  # noqa: F401
    except ImportError as e:
        print(f"zkpy verify: needs {e.name}: pip install 'zkpy[verify]'", file=sys.stderr)
        return 2
    from .reportfiles import verdict
    from .run import run

    try:
        result = run(config)
    except (RuntimeError, OSError) as e:  # the ensemble did not start, a port, a disk
        print(f"zkpy verify: the run failed: {str(e).splitlines()[0]}", file=sys.stderr)
        return 1
    print(f"{verdict(result)}: {result.stats.ops} ops ({result.stats.ok} ok, {result.stats.error} error, "
          f"{result.stats.unknown} unknown), {len(result.windows)} faults, {result.seconds:.0f}s end to end")
    print(f"report: {os.path.join(result.out, 'report.md')}")
    print(f"replay: {config.replay_command()}")
    return 0 if result.ok else 1
