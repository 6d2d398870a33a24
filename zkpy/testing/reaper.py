"""A watchdog that outlives its parent: when the parent dies, however it dies (SIGKILL
included), the reaper kills the process groups it was told of and removes a directory.

Every process `Ensemble` runs one, so that a `kill -9` of `zkpy ensemble`, `zkpy verify` or
a test run leaves no member running and (without `keep`) no temp dir.  The parent holds the
write end of the reaper's stdin and writes `pid N` for each process group to kill (`forget
N` once it is gone: its number may be reused); its death closes the pipe, and the EOF is the
signal.  `done` written before a normal exit (the parent cleaned up itself) lets the
reaper exit without touching anything: a pid it knew of may belong to another process by
then.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time


class Reaper:
    def __init__(self, remove_dir: str | None) -> None:
        # Run by path, not `-m zkpy.testing.reaper`: it needs nothing but the standard library,
        # and the package (which imports this module) would be imported first for nothing.
        self.proc = subprocess.Popen([sys.executable, os.path.abspath(__file__), remove_dir or ""],
                                     stdin=subprocess.PIPE, start_new_session=True, text=True)

    def watch(self, pid: int) -> None:
        """Kill process group `pid` if this process dies first."""
        self.proc.stdin.write(f"pid {pid}\n")  # type: ignore[union-attr]
        self.proc.stdin.flush()  # type: ignore[union-attr]

    def forget(self, pid: int) -> None:
        """Process group `pid` is gone (killed and waited for): never kill that number."""
        try:
            self.proc.stdin.write(f"forget {pid}\n")  # type: ignore[union-attr]
            self.proc.stdin.flush()  # type: ignore[union-attr]
        except BrokenPipeError:
            pass

    def release(self) -> None:
        """This process cleaned up itself: the reaper ends without acting."""
        try:
            self.proc.stdin.write("done\n")  # type: ignore[union-attr]
            self.proc.stdin.close()  # type: ignore[union-attr]
        except BrokenPipeError:
            pass
        self.proc.wait(10)


def _reap(remove_dir: str) -> None:
    groups: list[int] = []
    for line in sys.stdin:
        word, _, arg = line.strip().partition(" ")
        if word == "done":
            return
        if word == "pid":
            groups.append(int(arg))
        elif word == "forget" and int(arg) in groups:
            groups.remove(int(arg))
    # EOF without "done": the parent died.
    for pgid in groups:
        try:
            os.killpg(pgid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + 10
    while remove_dir and time.monotonic() < deadline:
        alive = []
        for pgid in groups:
            try:
                os.killpg(pgid, 0)
                alive.append(pgid)
            except ProcessLookupError:
                pass
        if not alive:
            break
        time.sleep(0.05)
    if remove_dir:
        shutil.rmtree(remove_dir, ignore_errors=True)


if __name__ == "__main__":
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    _reap(sys.argv[1] if len(sys.argv) > 1 else "")
