"""Ports that every member's zoo.cfg must name before any member starts.

A server that can bind port 0 does (ZkpyServer; ZkpyProcess reports the port it got); but an
ensemble's peer and election ports, and the client ports of a process ensemble, are written
into each member's zoo.cfg in advance.  "Bind port 0, note the port, close, reuse" races: the
kernel hands the same port to the next process that binds or connects with port 0 (every
outgoing connection takes one), and parallel test runs take each other's.

So ports come in blocks of `BLOCK` from below the kernel's ephemeral range
(/proc/sys/net/ipv4/ip_local_port_range), which the kernel never hands out by itself, and a
block belongs to whoever holds an exclusive `flock` on its lock file in the temp dir: other
processes (and other allocations in this process: a flock belongs to an open file) skip it,
and the lock goes with the holder's death, so nothing is left to clean up after a crash.
Each port of a claimed block is checked by binding it, in case a service outside this scheme
listens there; a block with a taken port is passed over.
"""

from __future__ import annotations

import fcntl
import os
import random
import socket
import tempfile

BLOCK = 64
LOWEST = 10000
LOCK_DIR = os.path.join(tempfile.gettempdir(), "zkpy-ports")


def ephemeral_range() -> tuple[int, int]:
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            low, high = map(int, f.read().split())
            return low, high
    except (OSError, ValueError):
        return 32768, 60999  # Linux's default


def _bindable(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the servers bind (TIME_WAIT is fine)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


class PortBlock:
    """`count` ports held until `release()` (or the process's end): `block.ports`."""

    def __init__(self, count: int) -> None:
        if count > BLOCK:
            raise ValueError(f"at most {BLOCK} ports in a block")
        low = LOWEST
        high = ephemeral_range()[0]
        blocks = list(range(low // BLOCK + 1, high // BLOCK))  # whole blocks in [low, high)
        random.shuffle(blocks)  # parallel runs rarely try the same block first
        os.makedirs(LOCK_DIR, exist_ok=True)
        for block in blocks:
            fd = os.open(os.path.join(LOCK_DIR, f"{block}.lock"), os.O_RDWR | os.O_CREAT, 0o666)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                os.close(fd)
                continue
            ports = list(range(block * BLOCK, block * BLOCK + count))
            if all(_bindable(p) for p in ports):
                self._fd: int | None = fd
                self.ports = ports
                return
            os.close(fd)
        raise RuntimeError(f"no free block of {count} ports in [{low}, {high})")

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
