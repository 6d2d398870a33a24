"""`zkpy verify` end to end: a short run under a nemesis is valid and leaves its report files;
a broken build that acknowledges before a quorum has a write is caught; bad usage is one line
and exit code 2; Apache ZooKeeper 3.8 under the same nemesis is valid (skipped without it
locally, failed without it under CI)."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from zkpy.testing.external import apache_zookeeper_available

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PNG = b"\x89PNG\r\n\x1a\n"


def verify(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=ROOT)  # the members run this tree's zkpy too
    return subprocess.run([sys.executable, "-m", "zkpy", "verify", "--quiet", *args], capture_output=True, text=True,
                          env=env, timeout=timeout)


def assert_report(out, verdict: str) -> str:
    for name in ("report.md", "report.txt", "history.jsonl", "timeline.png"):
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
    assert (out / "timeline.png").read_bytes()[:8] == PNG
    report = (out / "report.md").read_text()
    assert report.startswith(f"# zkpy verify: {verdict}"), report[:300]
    assert "replay: `zkpy verify " in report and "| ops | ok | error | unknown |" in report
    return report


def test_a_short_run_under_kills_and_partitions_is_valid(tmp_path):
    out = tmp_path / "run"
    done = verify("--time", "7", "--clients", "5", "--seed", "11", "--nemesis", "kill,partition", "--out", str(out))
    assert done.returncode == 0, done.stdout + done.stderr
    report = assert_report(out, "VALID")
    assert "SIGKILL member" in report and "isolate member" in report, report  # the faults really happened
    assert "restart member" in report and "heal member" in report
    assert "--seed 11" in done.stdout
    for sid in (1, 2, 3):  # each member's log and data-dir listing stay; a valid run drops the data itself
        member = out / "members" / f"server{sid}"
        assert "serving" in (member / "server.log").read_text(), sid
        assert "log." in (member / "data-listing.txt").read_text(), sid
        assert not (member / "version-2").exists(), sid
        assert f"member {sid}: log `members/server{sid}/server.log`" in report, report


def test_a_build_that_acknowledges_before_a_quorum_is_caught(tmp_path):
    out = tmp_path / "broken"
    done = verify("--time", "5", "--seed", "1", "--nemesis", "partition", "--broken", "ack-before-quorum",
                  "--out", str(out))
    assert done.returncode == 1, done.stdout + done.stderr
    report = assert_report(out, "INVALID")
    assert "acknowledged writes lost" in report or "linearizability violated" in report, report[:2000]
    for sid in (1, 2, 3):  # a failed run keeps each member's whole data dir, for a post-mortem
        assert any((out / "members" / f"server{sid}" / "version-2").glob("log.*")), sid
        assert f"data dir `members/server{sid}/version-2/`" in report, report


def _start_own_ensemble(base) -> tuple[str, dict[str, str]]:
    """A 3-member zkpy ensemble started by shell commands, as a user's own would be (pid files,
    logs by redirection): its connect string and the --*-cmd options that act on it."""
    import shlex

    from zkpy.testing.ensemble import Ensemble

    ens = Ensemble(3, keep=str(base))  # for its zoo.cfgs, ports and command lines only
    ens.port_block.release()  # the ports are written into the zoo.cfgs; the members bind them now
    for sid in ens.ids:
        member = base / f"server{sid}"
        (member / "start.sh").write_text(f"exec {shlex.join(ens.command(sid))} >> {member}/server.log 2>&1\n")
    pid = f"{base}/server{{member}}/pid"
    commands = {"restart": f"sh {base}/server{{member}}/start.sh & echo $! > {pid}",
                "kill": f"kill -9 $(cat {pid})", "pause": f"kill -STOP $(cat {pid})",
                "resume": f"kill -CONT $(cat {pid})"}
    env = dict(os.environ, PYTHONPATH=ROOT)
    for sid in ens.ids:
        subprocess.run(commands["restart"].format(member=sid), shell=True, check=True, env=env)
    return ens.connect_string, commands


def _stop_own_ensemble(base) -> None:
    import signal

    for pid_file in base.glob("server*/pid"):
        try:
            pid = int(pid_file.read_text())
            os.kill(pid, signal.SIGCONT)
            os.kill(pid, signal.SIGKILL)
        except (ValueError, ProcessLookupError):
            pass


def test_connect_to_an_ensemble_of_ones_own_with_shell_commands_as_the_nemesis(tmp_path):
    """--connect with --kill/--restart/--pause/--resume-cmd: the commands really act on the
    members (a SIGKILLed member comes back through --restart-cmd), and the run is valid."""
    from zkpy.verify.durability import SERVING_MODES, member_state

    base = tmp_path / "own"
    connect, commands = _start_own_ensemble(base)
    try:
        deadline = time.monotonic() + 30
        while not all(member_state(a) in SERVING_MODES for a in connect.split(",")):
            assert time.monotonic() < deadline, [member_state(a) for a in connect.split(",")]
            time.sleep(0.2)
        out = tmp_path / "run"
        args = [f"--{name}-cmd={cmd}" for name, cmd in commands.items()]
        done = verify("--connect", connect, *args, "--time", "8", "--seed", "3", "--nemesis", "kill,pause",
                      "--out", str(out))
        assert done.returncode == 0, done.stdout + done.stderr
        report = assert_report(out, "VALID")
        assert "SIGKILL member 2" in report and "restart member 2" in report, report
        assert "SIGSTOP member" in report and "resume member" in report, report
        assert "exited" not in report and "still running" not in report, report  # every command worked
        assert "Not kept: with --connect" in report
        for sid in (1, 2, 3):
            assert f"member {sid}: read 3 znodes after a sync" in report, report
        assert (base / "server2" / "server.log").read_text().count("] serving") == 2  # started, then restarted
    finally:
        _stop_own_ensemble(base)


def test_a_restart_command_that_leaves_a_server_in_the_background_does_not_hold_up_the_run(tmp_path):
    """`--restart-cmd 'java ... &'` (no redirection) leaves a process holding the command's
    stdout: the nemesis must not wait for that process to end (it waited for the whole run,
    or the 60 s command timeout, and then crashed)."""
    import signal

    from zkpy.verify.nemesis import CommandCluster

    pid = tmp_path / "pid"
    lines: list[str] = []
    cluster = CommandCluster(["127.0.0.1:1"], {"kill": "true", "restart": f"sleep 20 & echo $! > {pid}"},
                             lines.append)
    cluster.kill(1)
    began = time.monotonic()
    try:
        cluster.restart(1)
        assert time.monotonic() - began < 5 and lines == [], lines
    finally:
        if pid.exists():
            os.kill(int(pid.read_text()), signal.SIGKILL)


def test_a_member_that_never_serves_is_named_with_its_state():
    """The lost-write check waits (bounded) for each member to serve, and one that never does
    is a finding naming the member and what `srvr` says of it, not a bare timeout."""
    from zkpy.testing.ports import PortBlock
    from zkpy.verify.durability import lost_writes
    from zkpy.verify.history import History
    from zkpy.verify.workloads import make

    block = PortBlock(1)  # held, never listened on: connections are refused
    try:
        address = f"127.0.0.1:{block.ports[0]}"
        lost, states = lost_writes(make("register", "/x"), History(), {3: address}, lambda line: None,
                                   describe=lambda m: "; its process exited with code 1: zkpy: cannot start",
                                   serve_timeout=1.0)
    finally:
        block.release()
    assert states == {}
    assert lost == [(f"member 3 ({address}) did not serve after healing: srvr says no answer (ConnectionRefusedError)"
                     "; its process exited with code 1: zkpy: cannot start")], lost


@pytest.mark.parametrize("args, words", [
    (["--clients", "0"], ["--clients 0"]),
    (["--workload", "bank"], ["invalid choice: 'bank'"]),
    (["--nemesis", "kill,flood"], ["unknown kind 'flood'"]),
    (["--apache", "--nemesis", "torn-tail"], ["torn-tail", "Apache"]),
    (["--connect", "127.0.0.1:2181", "--nemesis", "kill"], ["--kill-cmd", "--restart-cmd"]),
    (["--connect", "nonsense"], ["is not HOST:PORT"]),
    (["--kill-cmd", "true"], ["is for --connect"]),
    (["--apache", "--broken", "ack-before-quorum"], ["--broken"]),
    (["--time", "x"], ["--time", "invalid float value"]),
])
def test_bad_usage_is_one_line_and_exit_code_2(args, words):
    done = verify(*args, timeout=20)
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert done.returncode == 2 and len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
    assert lines[0].startswith("zkpy verify: ")
    for word in words:
        assert word in lines[0], lines[0]


def test_apache_zookeeper_under_the_same_nemesis_is_valid(tmp_path):
    if not apache_zookeeper_available():
        message = "Apache ZooKeeper 3.8 is not installed (apt-get install zookeeper)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    out = tmp_path / "apache"
    done = verify("--apache", "--time", "6", "--seed", "3", "--nemesis", "kill,pause", "--out", str(out))
    assert done.returncode == 0, done.stdout + done.stderr
    report = assert_report(out, "VALID")
    assert "Apache ZooKeeper 3.8 ensemble" in report, report
    assert "SIGKILL member" in report or "SIGSTOP member" in report, report


def test_a_replayed_history_checks_the_workloads_own_models(tmp_path):
    """`python -m zkpy.verify history.jsonl` decides what the run decided: a deposed
    controller's fenced write that succeeded (the fencing model's anomaly) is found in a
    replay too, not skipped as an op of an unknown model."""
    from zkpy.verify import History, Op

    key = "/fence"
    ops = [Op(0, "c0", 1, "fencing", "bump", key, 0, 1.0, 1.1, "ok", 1),
           Op(1, "c1", 2, "fencing", "bump", key, 1, 2.0, 2.1, "ok", 2),  # c1 deposes c0
           Op(2, "c0", 1, "fencing", "write", key, [1, 0, "stale"], 3.0, 3.1, "ok", True)]  # c0 writes anyway
    path = tmp_path / "history.jsonl"
    History(ops).save(path)
    done = subprocess.run([sys.executable, "-m", "zkpy.verify", str(path)], capture_output=True, text=True,
                          timeout=60, env={**os.environ, "PYTHONPATH": ROOT})
    assert done.returncode == 1 and "fencing" in done.stdout, done.stdout + done.stderr
    History(ops[:2]).save(path)  # without the stale write: valid
    done = subprocess.run([sys.executable, "-m", "zkpy.verify", str(path)], capture_output=True, text=True,
                          timeout=60, env={**os.environ, "PYTHONPATH": ROOT})
    assert done.returncode == 0 and "1 objects" in done.stdout, done.stdout + done.stderr
