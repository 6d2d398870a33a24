"""Disk faults on real processes: one log write, preallocation, fsync or snapshot write of
one server fails once with ENOSPC (ZKPY_TEST_DISK_FAULTS, see zkpy/storage/faults.py),
under a load of acknowledged creates.

An ensemble member whose log write/fsync fails never acknowledges the failed txns nor
any later one: it stops taking part (neither votes nor acks), closes its clients, refuses
new sessions, logs the reason, keeps its process alive, and recovers from its disk on
restart; the other two go on without it.  A failed snapshot loses nothing and the member
keeps serving.  A standalone server refuses writes after a failed log write
(NOTREADONLY) and goes on serving reads.  In every case, after every server is killed
and restarted from its own disk, each one starts (no corrupt log) and holds every
acknowledged create.

Each fault is checked to have fired (the hook's "disk fault injected" line), so that no
case passes without its fault.  ZKPY_DISK_FAULT_ROUNDS=N adds rounds at later counts.
"""

from __future__ import annotations

import errno
import os
import re
import subprocess
import sys
import threading
import time
from dataclasses import dataclass

import pytest
from kazoo.client import KazooClient, KazooState
from kazoo.exceptions import NotReadOnlyCallError

from zkpy.storage import faults
from zkpy.testing import Ensemble
from zkpy.testing.external import ZkpyProcess

ROUNDS = int(os.environ.get("ZKPY_DISK_FAULT_ROUNDS", "1"))
STRERROR = os.strerror(errno.ENOSPC)  # "No space left on device"
FIRED = "disk fault injected"
# Reconnect quickly (kazoo's default backoff grows to a minute).
_RETRY = {"max_tries": -1, "delay": 0.1, "backoff": 1.5, "max_delay": 0.5}
_FOLLOWER, _LEADER = 1, 3  # see _start_with_roles


# ---------------------------------------------------------------- helpers


def _read(*paths: str) -> list[str]:
    lines: list[str] = []
    for path in paths:
        try:
            with open(path, errors="replace") as f:
                lines += f.read().splitlines()
        except OSError:
            pass
    return lines


def _fired(point: str, lines: list[str]) -> bool:
    return any(FIRED in line and f"point={point}" in line for line in lines)


def _reason_lines(lines: list[str]) -> list[str]:
    """The server's own error lines about the failed write (not the hook's line)."""
    return [line for line in lines if FIRED not in line and re.search(r"log", line, re.IGNORECASE)
            and re.search(r"fail", line, re.IGNORECASE) and STRERROR in line]


def _wait(predicate, timeout: float, interval: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)


def _client(hosts: str, timeout: float = 10.0) -> KazooClient:
    c = KazooClient(hosts, timeout=4, connection_retry=_RETRY)
    c.start(timeout)
    return c


def _close(c: KazooClient) -> None:
    try:
        c.stop()
        c.close()
    except Exception:  # noqa: BLE001 - best effort on a dead server
        pass


class Writer(threading.Thread):
    """Creates /load/<label>-<k> through one server as fast as it is answered."""

    def __init__(self, address: str, label: str, halt: threading.Event) -> None:
        super().__init__(daemon=True, name=f"writer-{label}")
        self.address, self.label, self.halt = address, label, halt
        self.acked: list[tuple[str, float]] = []  # (path, monotonic time of the answer)
        self.refused: list[str] = []  # answered NOTREADONLY
        self.states: list[tuple[str, float]] = []
        self.start_error: str | None = None

    def run(self) -> None:
        c = KazooClient(self.address, timeout=4, connection_retry=_RETRY)
        c.add_listener(lambda state: self.states.append((state, time.monotonic())))
        while True:  # the server may refuse us (a fault before we connected): try until halted
            try:
                c.start(2)
                break
            except Exception as e:  # noqa: BLE001
                self.start_error = repr(e)
                if self.halt.is_set():
                    _close(c)
                    return
        k = 0
        try:
            while not self.halt.is_set():
                k += 1
                path = f"/load/{self.label}-{k}"
                try:
                    c.create_async(path, b"x").get(timeout=2)
                    self.acked.append((path, time.monotonic()))
                except NotReadOnlyCallError:
                    self.refused.append(path)
                    time.sleep(0.02)
                except Exception:  # noqa: BLE001 - connection loss, timeouts: not acknowledged
                    time.sleep(0.05)
        finally:
            _close(c)

    def acked_after(self, t: float) -> int:
        return sum(1 for _, at in self.acked if at > t)

    def connected(self) -> bool:
        """Has a session now (the last state change said so)."""
        return bool(self.states) and self.states[-1][0] == KazooState.CONNECTED


def _stop_writers(halt: threading.Event, writers: list[Writer]) -> None:
    halt.set()
    for w in writers:
        w.join(15)


def _acked(writers: list[Writer]) -> set[str]:
    return {path for w in writers for path, _ in w.acked}


def _check_data_dir(data_dir: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "zkpy", "check", data_dir], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def _children(address: str) -> set[str]:
    c = _client(address, timeout=15)
    try:
        c.sync("/load")
        return {f"/load/{name}" for name in c.get_children("/load")}
    finally:
        _close(c)


# ---------------------------------------------------------------- ensembles


def _start_with_roles(ens: Ensemble) -> None:
    """Server 3 leads and server 1 follows: 3 and 1 start first (votes are (epoch, zxid,
    sid), all equal but the sid), then 2 joins them."""
    try:
        for sid in (3, 1):
            ens.start_server(sid)
        ens.wait_serving(sids=[1, 3])
        ens.start_server(2)
        ens.wait_serving()
    except BaseException:
        ens.stop()
        raise


@dataclass(frozen=True)
class Case:
    role: str  # "follower" or "leader": which member gets the fault
    point: str
    n: int
    snap_count: int | None = None

    @property
    def id(self) -> str:
        return f"{self.role}-{self.point}{self.n}"


ENSEMBLE_CASES = [
    Case("follower", "append", 3),  # early: as the clients' sessions are created
    Case("follower", "append", 300),  # mid-load
    Case("follower", "fsync", 150),
    # Every segment is preallocated once (64 MB) when it opens; with snapCount=50 a snapshot
    # rolls the log every 25-50 txns, so the 4th preallocation is ~100 txns in.
    Case("follower", "prealloc", 4, snap_count=50),
    Case("leader", "append", 200),
    Case("follower", "snapshot", 2, snap_count=50),
]
for r in range(1, ROUNDS):
    ENSEMBLE_CASES += [Case("follower", "append", 300 + 150 * r), Case("leader", "append", 200 + 150 * r),
                       Case("follower", "fsync", 150 + 150 * r), Case("leader", "fsync", 100 * r),
                       Case("follower", "prealloc", 4 + 2 * r, snap_count=50),
                       Case("leader", "snapshot", 1 + r, snap_count=50)]


@pytest.mark.timeout(120)
@pytest.mark.parametrize("case", ENSEMBLE_CASES, ids=lambda c: c.id)
def test_ensemble_member_with_a_failed_disk_write(case: Case) -> None:
    target = _FOLLOWER if case.role == "follower" else _LEADER
    others = [s for s in (1, 2, 3) if s != target]
    settings = {"snapCount": str(case.snap_count)} if case.snap_count else {}
    ens = Ensemble(3, settings=settings,
                   member_env={target: {faults.ENV: f"{case.point}:{case.n}:ENOSPC"}})
    _start_with_roles(ens)
    problems: list[str] = []
    halt = threading.Event()
    writers: list[Writer] = []
    try:
        assert ens.mode(target) == case.role, f"server {target} should be the {case.role}: {ens.log_tails()}"
        log_path = os.path.join(ens.base, f"server{target}", "server.log")
        setup = _client(ens.address(others[0]))
        setup.create("/load")
        _close(setup)
        writers = [Writer(ens.address(s), f"s{s}w{i}", halt) for s in others for i in range(2)]
        faulty = Writer(ens.address(target), f"s{target}w0", halt)
        for w in writers + [faulty]:
            w.start()
        healthy = writers
        writers = writers + [faulty]

        assert _wait(lambda: _fired(case.point, _read(log_path)), 30), (
            f"the fault {case.point}:{case.n} never fired on server {target}; "
            f"{len(_acked(writers))} creates acknowledged\n{ens.log_tails()}")
        t_fault = time.monotonic()

        if case.point == "snapshot":
            # A failed snapshot loses nothing and stops nothing: the member serves on.
            if not _wait(lambda: faulty.acked_after(t_fault + 1.0) >= 20, 20):
                problems.append(f"(b) server {target} stopped serving its client after a failed snapshot write "
                                f"({faulty.acked_after(t_fault)} acks since)")
            if ens.mode(target) != case.role:
                problems.append(f"(b) server {target} is {ens.mode(target)!r} after a failed snapshot write, "
                                f"not the {case.role}")
        else:
            # (b) the faulty member stops taking part and refuses sessions.
            probe = KazooClient(ens.address(target), timeout=2, connection_retry=_RETRY)
            try:
                probe.start(2)
            except Exception:  # noqa: BLE001 - refused: as it should
                pass
            else:
                try:
                    probe.create_async("/load/probe-after-fault", b"x").get(timeout=3)
                    problems.append(f"(b) server {target} gave a new session and acknowledged a create after "
                                    f"its failed {case.point}")
                except Exception as e:  # noqa: BLE001
                    problems.append(f"(b) server {target} gave a new session after its failed {case.point} "
                                    f"(its create then failed: {e!r})")
            finally:
                _close(probe)
            time.sleep(max(0.0, t_fault + 2.0 - time.monotonic()))  # time for its client to see late acks
            late = faulty.acked_after(t_fault + 1.0)
            if late:
                problems.append(f"(b) server {target} acknowledged {late} creates of its client more than 1 s "
                                f"after its failed {case.point}")
            if faulty.connected():
                problems.append(f"(b) server {target}'s client is still connected after its failed "
                                f"{case.point}")
            if not ens.alive(target):
                problems.append(f"(b) server {target}'s process exited after its failed {case.point} "
                                f"(it should stay up, out of the ensemble)")
            elif ens.mode(target) in ("leader", "follower"):
                problems.append(f"(b) server {target} still reports Mode: {ens.mode(target)} after its failed "
                                f"{case.point}")
            if not _reason_lines(_read(log_path)):
                problems.append(f"(b) server {target}'s log has no error line about the failed log write "
                                f"with {STRERROR!r}")

        # (a) the other two go on serving acknowledged writes (after an election, if the leader failed).
        def healthy_acks() -> int:
            return sum(w.acked_after(t_fault) for w in healthy)

        if not _wait(lambda: healthy_acks() >= 100, 30):
            problems.append(f"(a) the other members acknowledged only {healthy_acks()} creates in 30 s after "
                            f"the fault\n{ens.log_tails()}")
        _stop_writers(halt, writers)
        acked = _acked(writers)

        # (c), (d): every member down, then each restarts from its own disk.
        for sid in ens.ids:
            ens.kill(sid)
        checks = {sid: _check_data_dir(os.path.join(ens.base, f"server{sid}")) for sid in ens.ids}
        for sid, p in checks.items():
            out, err = p.communicate(timeout=60)
            if p.returncode != 0:
                problems.append(f"(d) `zkpy check` of server {sid}'s data dir exited {p.returncode}: "
                                f"{(err or out).strip()}")
        ens.member_env.clear()
        for sid in ens.ids:
            ens.start_server(sid)
        try:
            ens.wait_serving(timeout=30)
        except RuntimeError as e:
            problems.append(f"(d) the restarted ensemble does not serve: {e}")
        for sid in ens.ids:
            if not ens.alive(sid):
                tail = [line for line in _read(os.path.join(ens.base, f"server{sid}", "server.log"))
                        if "cannot start" in line or "corrupt" in line][-1:]
                problems.append(f"(d) server {sid} did not restart: {tail}")
                continue
            try:
                missing = acked - _children(ens.address(sid))
            except Exception as e:  # noqa: BLE001
                problems.append(f"(c) cannot read server {sid} after the restart: {e!r}")
                continue
            if missing:
                problems.append(f"(c) server {sid} lacks {len(missing)} of {len(acked)} acknowledged creates "
                                f"after the restart, e.g. {sorted(missing)[:3]}")
        assert len(acked) > 100, "the test did not write under load"
        assert not problems, f"{case.id}:\n" + "\n".join(problems)
    finally:
        halt.set()
        ens.stop()


# ---------------------------------------------------------------- standalone

STANDALONE_CASES = [Case("standalone", "append", 200), Case("standalone", "fsync", 100),
                    Case("standalone", "prealloc", 3, snap_count=50)]


@pytest.mark.timeout(90)
@pytest.mark.parametrize("case", STANDALONE_CASES, ids=lambda c: c.id)
def test_standalone_server_with_a_failed_log_write(case: Case, tmp_path) -> None:
    data_dir = str(tmp_path / "data")
    config = {"snapCount": str(case.snap_count)} if case.snap_count else {}
    halt = threading.Event()
    writers: list[Writer] = []
    problems: list[str] = []
    server = ZkpyProcess(tick_time=200, data_dir=data_dir, config=config,
                         env={faults.ENV: f"{case.point}:{case.n}:ENOSPC"})
    server.start()
    try:
        probe = _client(server.connect_string)  # a session from before the fault, for reads after it
        probe.create("/load")
        writers = [Writer(server.connect_string, f"w{i}", halt) for i in range(3)]
        for w in writers:
            w.start()
        assert _wait(lambda: _fired(case.point, _read(server.log_path, server.stderr_path)), 30), (
            f"the fault {case.point}:{case.n} never fired\n{server.diagnostics()}")
        t_fault = time.monotonic()
        try:
            probe.create_async("/load/probe-after-fault", b"x").get(timeout=5)
            problems.append("a create was acknowledged after the failed log write")
        except NotReadOnlyCallError:
            pass
        except Exception as e:  # noqa: BLE001
            problems.append(f"a create after the failed log write got {e!r}, not NOTREADONLY")
        try:
            probe.get_children("/load")
        except Exception as e:  # noqa: BLE001
            problems.append(f"reads stopped after the failed log write: {e!r}")
        time.sleep(1.0)
        late = sum(w.acked_after(t_fault + 0.5) for w in writers)
        if late:
            problems.append(f"{late} creates acknowledged more than 0.5 s after the failed log write")
        if not _reason_lines(_read(server.log_path, server.stderr_path)):
            problems.append(f"no error line about the failed log write with {STRERROR!r}")
        _close(probe)
        _stop_writers(halt, writers)
        acked = _acked(writers)
        refused = {path for w in writers for path in w.refused} | {"/load/probe-after-fault"}
        server.kill()
        server.stop(cleanup=True)  # the workdir (zoo.cfg, logs) goes; data_dir is ours and stays

        again = ZkpyProcess(tick_time=200, data_dir=data_dir, config=config)
        try:
            again.start()
        except RuntimeError as e:
            problems.append(f"the restart failed: {e}")
            assert not problems, f"{case.id}:\n" + "\n".join(problems)
        try:
            children = _children(again.connect_string)
            missing = acked - children
            if missing:
                problems.append(f"{len(missing)} of {len(acked)} acknowledged creates lost, "
                                f"e.g. {sorted(missing)[:3]}")
            # NOTREADONLY is a definite "not done": the failed batch's requests, which may be on
            # disk (a failed fsync follows a write), get CONNECTIONLOSS instead.
            back = refused & children
            if back:
                problems.append(f"{len(back)} creates refused with NOTREADONLY are there after the restart, "
                                f"e.g. {sorted(back)[:3]}")
            c = _client(again.connect_string)
            try:
                c.create_async("/after-restart", b"x").get(timeout=5)
            except Exception as e:  # noqa: BLE001
                problems.append(f"the restarted server does not take writes: {e!r}\n{again.diagnostics()}")
            finally:
                _close(c)
        finally:
            again.stop()
        assert len(acked) > 50, "the test did not write under load"
        assert not problems, f"{case.id}:\n" + "\n".join(problems)
    finally:
        halt.set()
        for w in writers:
            w.join(15)
        server.stop()


# ---------------------------------------------------------------- the hook itself


def test_fault_spec_parsing_and_counting() -> None:
    assert faults.parse("append:300:ENOSPC, fsync:2:EIO") == {"append": {300: errno.ENOSPC}, "fsync": {2: errno.EIO}}
    for bad in ("append:0:ENOSPC", "write:1:ENOSPC", "append:1:ENOPE", "append:1", "append:x:EIO"):
        with pytest.raises(faults.FaultSpecError):
            faults.parse(bad)
    hook = faults.DiskFaults(faults.parse("fsync:2:EIO"))
    calls = []
    fsync = hook.hooked("fsync", lambda fd: calls.append(fd))
    assert hook.hooked("append", os.pwrite) is os.pwrite  # nothing planned there: the function itself
    fsync(1)
    with pytest.raises(OSError) as e:
        fsync(2)
    assert e.value.errno == errno.EIO and calls == [1]  # the failing call did nothing
    fsync(3)
    assert calls == [1, 3] and hook.calls("fsync") == 3
    if os.environ.get(faults.ENV) is None:
        assert faults.ACTIVE is None
