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
    if cfg.servers and len([s for s in cfg.servers.values() if s.role == "participant"]) > 1:
        print("zkpy: quorum mode (server.N lines) is not supported yet; run standalone", file=sys.stderr)
        return 2
    from .server.server import ZkServer

    async def main() -> None:
        server = ZkServer(cfg)
        await server.start()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        await server.stop()

    _run(main())
    return 0


def _run(coro) -> None:
    try:
        import uvloop

        uvloop.run(coro)
    except ImportError:  # pragma: no cover - uvloop is a dependency, but keep the server usable without it
        asyncio.run(coro)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(prog="zkpy", description="A ZooKeeper-compatible coordination server.")
    parser.add_argument("--log-level", default="INFO")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run a server from a zoo.cfg (standalone on 127.0.0.1:2181 without one)")
    serve.add_argument("config", nargs="?", help="path to zoo.cfg")
    serve.add_argument("properties", nargs="*", help="Java system properties as -Dkey=value")
    # -D arguments look like options to argparse: split them off first.
    props = [a for a in argv if a.startswith("-D")]
    rest = [a for a in argv if not a.startswith("-D")]
    args = parser.parse_args(rest)
    args.properties = props
    logs.configure(args.log_level)
    if args.command == "serve":
        return _serve(args)
    return 2


if __name__ == "__main__":
    sys.exit(main())
