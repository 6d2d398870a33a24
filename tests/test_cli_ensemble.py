"""`zkpy ensemble`: -n 1 serves standalone, -n < 1 is refused, --base-port is honoured, a
member's death is reported, --keep keeps the data and logs, and a `kill -9` of the command
leaves no member running and no temp dir."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time

import pytest
from kazoo.client import KazooClient

from zkpy.testing.ports import PortBlock

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class Command:
    """`zkpy ensemble ARGS` in the background, with its connect string and data dir."""

    def __init__(self, *args: str) -> None:
        env = dict(os.environ, PYTHONPATH=ROOT)
        self.proc = subprocess.Popen([sys.executable, "-m", "zkpy", "ensemble", *args], stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True, env=env)
        try:
            self.connect_string = self.proc.stdout.readline().strip()
            if not self.connect_string:
                raise AssertionError(f"zkpy ensemble did not start: {self.proc.stderr.read()}")
            line = self.proc.stderr.readline()
            found = re.search(r"data and logs in (\S+);", line)
            assert found, f"zkpy ensemble's second line names no data dir: {line!r}"
            self.base = found.group(1)
        except BaseException:  # a command that started wrongly still stops (with its members)
            self.proc.send_signal(signal.SIGINT)
            self.proc.wait(30)
            raise

    def member_pids(self) -> list[int]:
        """The `zkpy serve` processes whose zoo.cfg is under this command's dir."""
        pids = []
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as f:
                    cmdline = f.read().decode(errors="replace")
            except OSError:
                continue
            if "serve" in cmdline and self.base + "/" in cmdline:
                pids.append(int(entry))
        return pids

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(30)


def wait_until(condition, what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def create_and_read(connect_string: str) -> bytes:
    client = KazooClient(connect_string, timeout=10)
    client.start(timeout=20)
    try:
        client.create("/from-the-cli", b"x")
        return client.get("/from-the-cli")[0]
    finally:
        client.stop()
        client.close()


def test_kill_9_of_the_command_leaves_no_member_and_no_temp_dir():
    cmd = Command("-n", "3", "--tick-time", "200")
    try:
        assert len(cmd.member_pids()) == 3 and os.path.isdir(cmd.base)
        cmd.proc.kill()
        cmd.proc.wait(10)
        wait_until(lambda: not cmd.member_pids(), "the members to die with the command")
        wait_until(lambda: not os.path.exists(cmd.base), "the temp dir to go")
    finally:
        for pid in cmd.member_pids():
            os.kill(pid, signal.SIGKILL)


def test_one_server_is_standalone_and_the_base_port_is_honoured():
    block = PortBlock(3)  # held while the command runs: no other allocator takes these ports
    try:
        base = block.ports[0]
        cmd = Command("-n", "1", "--base-port", str(base))
        try:
            assert cmd.connect_string == f"127.0.0.1:{base}"
            assert create_and_read(cmd.connect_string) == b"x"
        finally:
            cmd.stop()
        assert cmd.proc.returncode == 0
        assert not os.path.exists(cmd.base)
    finally:
        block.release()


@pytest.mark.parametrize("n", ["0", "-2"])
def test_fewer_than_one_server_is_refused(n):
    result = subprocess.run([sys.executable, "-m", "zkpy", "ensemble", "-n", n], capture_output=True, text=True,
                            timeout=20, env=dict(os.environ, PYTHONPATH=ROOT))
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1 and "at least one server" in lines[0], result.stderr


def test_a_dead_member_is_reported_and_keep_keeps_the_logs(tmp_path):
    keep = str(tmp_path / "kept")
    cmd = Command("-n", "3", "--tick-time", "200", "--keep", keep)
    try:
        assert cmd.base == keep
        assert create_and_read(cmd.connect_string) == b"x"
        victim = cmd.member_pids()[0]
        os.kill(victim, signal.SIGKILL)
        line = cmd.proc.stderr.readline()
        assert re.match(r"zkpy ensemble: server \d exited with code -9 \(its log: .*server\d/server.log\)", line), line
    finally:
        cmd.stop()
    assert cmd.proc.returncode == 0
    assert not cmd.member_pids()
    for sid in (1, 2, 3):
        assert os.path.getsize(os.path.join(keep, f"server{sid}", "server.log")) > 0
