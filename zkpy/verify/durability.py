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


SERVING_MODES = ("leader", "follower", "observer", "standalone")
UNKNOWN = "unknown (srvr is not in its 4lw.commands.whitelist)"  # then only the read can tell
SERVE_TIMEOUT = 60.0  # per member: a restarted member rejoins in a few seconds; a minute is a member that does not


def member_state(address: str) -> str:
    """What `srvr` says of the member right now: its Mode ("follower", ...), "not serving"
    (it answers but is in an election), or "no answer (...)" (dead, paused, not listening)."""
    from ..testing.external import four_letter_word

    host, _, port = address.rpartition(":")
    try:
        answer = four_letter_word(host, int(port), "srvr", timeout=2)
    except OSError as exc:
        return f"no answer ({type(exc).__name__})"
    for line in answer.splitlines():
        if line.startswith("Mode: "):
            return line[6:].strip()
    if "not in the whitelist" in answer:
        return UNKNOWN
    return "not serving" if "not currently serving" in answer else f"answer without a Mode: {answer[:60]!r}"


def wait_member_serving(address: str, timeout: float = SERVE_TIMEOUT) -> tuple[bool, str, float]:
    """Poll `srvr` until the member says it leads, follows, observes or stands alone (only then
    does a ZooKeeper member take sessions): (served, its last state, seconds waited).  The
    ensemble's own wait passes once a quorum serves; a member still joining would otherwise
    spend the whole read timeout refusing sessions."""
    began = time.monotonic()
    while True:
        state = member_state(address)
        waited = time.monotonic() - began
        if state in SERVING_MODES or state == UNKNOWN:
            return True, state, waited
        if waited >= timeout:
            return False, state, waited
        time.sleep(0.2)


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


def lost_writes(workload: Workload, history: History, addresses: dict[int, str], log: Callable[[str], None],
                describe: Callable[[int], str] = lambda member: "", serve_timeout: float = SERVE_TIMEOUT,
                ) -> tuple[list[str], dict[int, dict[str, Snapshot | None]]]:
    """Every problem found (acknowledged writes missing on a member, members that disagree),
    and what each member holds; `describe` adds what the cluster knows of a member that did
    not serve (a local member's exit code and last log line)."""
    paths = workload.final_paths()
    states: dict[int, dict[str, Snapshot | None]] = {}
    problems: list[str] = []
    for member, address in sorted(addresses.items()):
        gone = describe(member)  # a member whose process exited will not serve: no point waiting
        served, state, waited = wait_member_serving(address, 0.0 if gone else serve_timeout)
        if not served:
            within = "" if gone else f" within {waited:.0f}s"
            problems.append(f"member {member} ({address}) did not serve{within} after healing: srvr says {state}{gone}")
            continue
        if waited >= 1.0:
            log(f"member {member}: {state} after {waited:.1f}s of waiting for it to serve")
        try:
            states[member] = read_member(address, paths)
        except Exception as exc:  # noqa: BLE001 - reported as a finding, not a crash
            problems.append(f"member {member} ({address}) could not be read after healing: {type(exc).__name__} "
                            f"(srvr said {state} before the read, says {member_state(address)} now)"
                            f"{describe(member)}")
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
