"""What a run keeps of a local ensemble's members in its report directory: DIR/members/.

The ensemble is started with `Ensemble(keep=DIR/members)`, so each member's zoo.cfg, log
(`serverN/server.log`) and data dir live there from the start and survive however the run
ends (a crash of the harness, a member that could not be read).  A member that could not be
read after healing is otherwise a verdict with nothing to explain it.  After a valid run only
the logs, configs and a listing of each data dir (`serverN/data-listing.txt`) are kept: the
transaction logs and snapshots are most of the bytes and explain nothing a valid run needs;
after a failed run everything stays, for `zkpy logs` or a replay by hand.
"""

from __future__ import annotations

import os
import shutil

DATA_DIR = "version-2"  # the transaction logs and snapshots of a zkpy (or Apache) member


def members_dir(out: str) -> str:
    """Where the ensemble of a run writing its report to `out` keeps its members; emptied
    first, so that a reused --out never gives a new ensemble an old one's data."""
    path = os.path.join(out, "members")
    shutil.rmtree(path, ignore_errors=True)
    return path


def listing(data_dir: str) -> str:
    """Every file under `data_dir` with its size, one a line, as `ls -l` would show them."""
    lines = []
    for root, _, files in sorted(os.walk(data_dir)):
        for name in sorted(files):
            path = os.path.join(root, name)
            try:
                size = os.path.getsize(path)
            except OSError:
                continue
            lines.append(f"{size:>12}  {os.path.relpath(path, data_dir)}")
    return "\n".join(lines) + "\n" if lines else "(empty)\n"


def finish(base: str, ids: list[int], failed: bool) -> list[str]:
    """Write each member's data-dir listing, drop the data itself unless the run failed, and
    return what the report names, one line per member (paths relative to the report dir)."""
    out = os.path.dirname(base)
    lines = []
    for sid in ids:
        member = os.path.join(base, f"server{sid}")
        data = os.path.join(member, DATA_DIR)
        with open(os.path.join(member, "data-listing.txt"), "w") as f:
            f.write(listing(data))
        if not failed:
            shutil.rmtree(data, ignore_errors=True)
        log = os.path.join(member, "server.log")
        size = os.path.getsize(log) if os.path.exists(log) else 0
        kept = f"data dir `{os.path.relpath(data, out)}/`" if failed else "data dir removed (a valid run)"
        lines.append(f"member {sid}: log `{os.path.relpath(log, out)}` ({size} bytes), "
                     f"listing `{os.path.relpath(os.path.join(member, 'data-listing.txt'), out)}`, {kept}")
    return lines
