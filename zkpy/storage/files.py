"""Durable atomic file replacement: after a crash a reader sees the old file or the new one.

The steps: write `<path>.tmp` in the same directory, flush, fsync it, `os.replace` it onto
`path`, fsync the directory.  The last step makes the rename itself durable: without it a
power loss can bring back the old name, or no file at all where none was before.

Blocking I/O: call from a thread when on the event loop.  The tmp name is fixed, so one
writer per path at a time; a tmp file left by a crash is overwritten by the next write.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import BinaryIO


def fsync_dir(directory: str) -> None:
    """Make the creations, renames and removals of names in `directory` durable."""
    fd = os.open(directory or ".", os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextmanager
def durable_writer(path: str) -> Iterator[BinaryIO]:
    """A binary file to stream the new contents of `path` into; on a clean exit it replaces
    `path` durably.  If the block raises, `path` is left as it was and the tmp file removed."""
    tmp = path + ".tmp"
    f = open(tmp, "wb")  # noqa: SIM115 - closed below, before the rename
    try:
        try:
            yield f
            f.flush()
            os.fsync(f.fileno())
        finally:
            f.close()
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    fsync_dir(os.path.dirname(path))


def durable_replace(path: str, data: bytes) -> None:
    """Replace the contents of `path` with `data`, atomically and durably."""
    with durable_writer(path) as f:
        f.write(data)
