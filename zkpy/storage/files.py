"""Durable file replacement (placeholder until the shared helper lands)."""

from __future__ import annotations

import os


def durable_replace(path: str, data: bytes) -> None:
    """Replace `path` with `data` atomically and durably: tmp file, fsync, rename, fsync the dir."""
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    dfd = os.open(os.path.dirname(path) or ".", os.O_RDONLY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)
