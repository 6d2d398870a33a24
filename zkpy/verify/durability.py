"""The lost-acknowledged-write check: read every member directly once the ensemble has healed.

Linearizability sees only what clients read during the run; a write acknowledged and then
lost (truncated away when a deposed leader rejoins) may never have been read.  So after the
run each member is asked on its own (a client connected to that member alone, after a `sync`,
which brings the member up to the leader's commit point) for the workload's znodes, and the
workload says what every acknowledged write must have left there.  The members must also
agree with one another.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from .history import History
from .workloads import Snapshot, Workload


def read_member(address: str, paths: list[str], timeout: float = 30.0) -> dict[str, Snapshot | None]:
    """Each path as this member holds it after a sync; retried until `timeout` (a member that
    has just restarted may still be joining)."""
    from kazoo.client import KazooClient
    from kazoo.exceptions import KazooException, NoNodeError
    from kazoo.handlers.threading import KazooTimeoutError

    deadline = time.monotonic() + timeout
    while True:
        client = KazooClient(hosts=address, timeout=4.0, connection_retry={"max_tries": 3, "delay": 0.1})
        try:
            client.start(min(10.0, max(1.0, deadline - time.monotonic())))
            client.sync("/")
            out: dict[str, Snapshot | None] = {}
            for path in paths:
                try:
                    data, stat = client.get(path)
                    children = tuple(sorted(client.get_children(path)))
                except NoNodeError:
                    out[path] = None
                    continue
                out[path] = Snapshot(data.decode("latin-1"), stat.version, children)
            return out
        except (KazooException, KazooTimeoutError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)
        finally:
            client.stop()
            client.close()


def lost_writes(workload: Workload, history: History, addresses: dict[int, str],
                log: Callable[[str], None]) -> tuple[list[str], dict[int, dict[str, Snapshot | None]]]:
    """Every problem found (acknowledged writes missing on a member, members that disagree),
    and what each member holds."""
    paths = workload.final_paths()
    states: dict[int, dict[str, Snapshot | None]] = {}
    problems: list[str] = []
    for member, address in sorted(addresses.items()):
        try:
            states[member] = read_member(address, paths)
        except Exception as exc:  # noqa: BLE001 - reported as a finding, not a crash
            problems.append(f"member {member} ({address}) could not be read after healing: {type(exc).__name__}")
            continue
        for problem in workload.lost_writes(history, states[member]):
            problems.append(f"member {member}: {problem}")
        log(f"member {member}: read {len(paths)} znodes after a sync")
    if states:
        first, base = next(iter(states.items()))
        for member, state in states.items():
            for path in paths:
                if state.get(path) != base.get(path):
                    problems.append(f"member {member} and member {first} differ on {path}: "
                                    f"{_short(state.get(path))} vs {_short(base.get(path))}")
    return problems, states


def _short(snap: Snapshot | None) -> str:
    if snap is None:
        return "absent"
    children = f", {len(snap.children)} children" if snap.children else ""
    return f"version {snap.version}, data {snap.data[:40]!r}{children}"
