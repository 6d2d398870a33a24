"""Deliberately broken zkpy builds, to see the fuzzer's oracles catch them.

Nothing in zkpy/server knows of these: `member_env(kind)` gives a member process a
`sitecustomize` module (Python imports it at start-up) that patches the running server:

- "raise":  a request that does not decode raises IndexError instead of JuteError, the
            kind of slip that escapes the frame loop (the log oracle: a traceback);
- "crash":  the process exits on an unknown op code (the liveness oracle);
- "leak":   every connection keeps 256 KiB when it closes (the memory oracle);
- "stall":  a removeWatches of a path with a NUL sleeps 30 s on the event loop (the canary).
"""

from __future__ import annotations

import os
import time

KINDS = ("raise", "crash", "leak", "stall")
_SITECUSTOMIZE = "import zkpy.testing.fuzzbroken as _b\n_b.install({kind!r})\n"
_leaked: list[bytes] = []


def member_env(kind: str, directory: str) -> dict[str, str]:
    """Environment for a member process that runs the broken build `kind`; its
    sitecustomize goes in `directory` (the ensemble's own temp dir, removed with it)."""
    if kind not in KINDS:
        raise ValueError(f"unknown broken build {kind!r} (one of {', '.join(KINDS)})")
    d = os.path.join(directory, "broken-build")
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "sitecustomize.py"), "w") as f:
        f.write(_SITECUSTOMIZE.format(kind=kind))
    path = [d, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))]
    if os.environ.get("PYTHONPATH"):
        path.append(os.environ["PYTHONPATH"])
    return {"PYTHONPATH": os.pathsep.join(path)}


def install(kind: str) -> None:
    from ..protocol import jute
    from ..protocol.codes import Op
    from ..server import connection

    if kind == "raise":
        for op, decode in list(jute.DECODE.items()):
            jute.DECODE[op] = _raising(decode)
    elif kind == "crash":
        original = connection.ClientConnection._request

        def _request(self, buf, start, end, member, unfaulted=False):
            if end - start >= 8 and int.from_bytes(buf[start + 4 : start + 8], "big", signed=True) not in jute.DECODE:
                os._exit(70)
            return original(self, buf, start, end, member, unfaulted)

        connection.ClientConnection._request = _request
    elif kind == "leak":
        lost = connection.ClientConnection.connection_lost

        def connection_lost(self, exc):
            _leaked.append(bytes(256 * 1024))
            return lost(self, exc)

        connection.ClientConnection.connection_lost = connection_lost
    elif kind == "stall":
        decode = jute.DECODE[Op.REMOVE_WATCHES]

        def stalling(buf, pos, end):
            args = decode(buf, pos, end)
            if "\x00" in args[0]:
                time.sleep(30)
            return args

        jute.DECODE[Op.REMOVE_WATCHES] = stalling


def _raising(decode):
    from ..protocol.jute import JuteError

    def decode_or_raise(buf, pos, end):
        try:
            return decode(buf, pos, end)
        except JuteError as e:
            raise IndexError(str(e)) from None

    return decode_or_raise
