"""`zkpy verify` end to end: a short run under a nemesis is valid and leaves its report files;
a broken build that acknowledges before a quorum has a write is caught; bad usage is one line
and exit code 2; Apache ZooKeeper 3.8 under the same nemesis is valid (skipped without it
locally, failed without it under CI)."""

from __future__ import annotations

import os
import subprocess
import sys

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


def test_a_build_that_acknowledges_before_a_quorum_is_caught(tmp_path):
    out = tmp_path / "broken"
    done = verify("--time", "5", "--seed", "1", "--nemesis", "partition", "--broken", "ack-before-quorum",
                  "--out", str(out))
    assert done.returncode == 1, done.stdout + done.stderr
    report = assert_report(out, "INVALID")
    assert "acknowledged writes lost" in report or "linearizability violated" in report, report[:2000]


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
