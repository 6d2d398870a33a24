"""The `zkpy` command on wrong input: one line naming the file and the fix, no traceback,
exit code 2 (bad input) or 1 (a failure at run time); the tools refuse missing input."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from kazoo.client import KazooClient

from zkpy.testing import ZkpyServer

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def zkpy(*args: str, cwd: str | None = None, timeout: float = 20) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=ROOT)
    return subprocess.run([sys.executable, "-m", "zkpy", *args], capture_output=True, text=True, cwd=cwd, env=env,
                          timeout=timeout)


def one_line(result: subprocess.CompletedProcess, code: int, *words: str) -> str:
    """The result failed with `code` and said so in exactly one line holding `words`."""
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == code, result.stderr
    assert "Traceback" not in result.stderr and len(lines) == 1, result.stderr
    for word in words:
        assert word in lines[0], lines[0]
    return lines[0]


def write_cfg(tmp_path, text: str, name: str = "zoo.cfg") -> str:
    path = tmp_path / name
    path.write_text(text + "clientPortAddress=127.0.0.1\n")  # last: the line numbers tested stay
    return str(path)


ENSEMBLE = "clientPort=0\nserver.1=127.0.0.1:23001:24001\nserver.2=127.0.0.1:23002:24002\n"


@pytest.mark.parametrize("myid, words", [
    ("abc", ["myid", "'abc'", "not a server id"]),
    ("7", ["myid", "says 7", "no server.7 line", "server.1, server.2"]),
])
def test_bad_myid(tmp_path, myid, words):
    data = tmp_path / "data"
    data.mkdir()
    (data / "myid").write_text(myid + "\n")
    cfg = write_cfg(tmp_path, f"dataDir={data}\n" + ENSEMBLE)
    one_line(zkpy("serve", cfg), 2, *words)


def test_missing_myid(tmp_path):
    cfg = write_cfg(tmp_path, f"dataDir={tmp_path / 'data'}\n" + ENSEMBLE)
    one_line(zkpy("serve", cfg), 2, "myid is missing")


def test_data_dir_that_is_a_file(tmp_path):
    (tmp_path / "file").write_text("x")
    cfg = write_cfg(tmp_path, f"dataDir={tmp_path / 'file'}\nclientPort=0\n")
    one_line(zkpy("serve", cfg), 2, "dataDir", "file", "Not a directory", "zoo.cfg")


def test_data_dir_that_cannot_be_created(tmp_path):
    cfg = write_cfg(tmp_path, "dataDir=/proc/zkpy-test/data\nclientPort=0\n")
    one_line(zkpy("serve", cfg), 2, "dataDir /proc/zkpy-test/data")


def test_read_only_data_dir(tmp_path):
    mnt = tmp_path / "ro"
    mnt.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(mnt)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a read-only tmpfs here (needs root): {mounted.stderr.decode().strip()}")
    try:
        cfg = write_cfg(tmp_path, f"dataDir={mnt}\nclientPort=0\n")
        one_line(zkpy("serve", cfg), 2, f"dataDir {mnt}", "Read-only file system")
    finally:
        subprocess.run(["umount", str(mnt)], check=True)


def test_binary_config(tmp_path):
    path = tmp_path / "zoo.cfg"
    path.write_bytes(b"\xff\xfe\x00\x01binary")
    one_line(zkpy("serve", str(path)), 2, "zoo.cfg", "not a text file")


@pytest.mark.parametrize("line, words", [
    ("server.x=127.0.0.1:23001:24001", ["zoo.cfg:2", "server.x", "must be a number"]),
    ("servr.2=127.0.0.1:23002:24002", ["zoo.cfg:2", "servr.2", "did you mean server.2"]),
    ("group.1=1:2", ["zoo.cfg:2", "hierarchical quorums"]),
])
def test_unusable_server_lines_are_refused(tmp_path, line, words):
    cfg = write_cfg(tmp_path, f"dataDir={tmp_path}\n{line}\nclientPort=0\n")
    one_line(zkpy("serve", cfg), 2, *words)


@pytest.mark.parametrize("servers", [
    "server.1=127.0.0.1:23001:24001\nserver.2=127.0.0.1:23001:24002\n",  # two peer ports alike
    "server.1=127.0.0.1:23001:24001\nserver.2=127.0.0.1:23002:23001\n",  # an election port on a peer port
    "server.1=127.0.0.1:23001:23001\nserver.2=127.0.0.1:23002:24002\n",  # one member's two ports alike
])
def test_duplicate_peer_addresses_are_refused(tmp_path, servers):
    data = tmp_path / "data"
    data.mkdir()
    (data / "myid").write_text("1")
    cfg = write_cfg(tmp_path, f"dataDir={data}\nclientPort=0\n{servers}")
    one_line(zkpy("serve", cfg), 2, "127.0.0.1:23001", "own peer and election ports")


def test_server_given_twice(tmp_path):
    cfg = write_cfg(tmp_path, f"dataDir={tmp_path}\nclientPort=0\n" + ENSEMBLE + "server.2=127.0.0.1:23003:24003\n")
    one_line(zkpy("serve", cfg), 2, "zoo.cfg:6", "server.2 is given twice")


def test_bad_property_value():
    one_line(zkpy("serve", "-Dzookeeper.maxCnxns=abc"), 2, "zookeeper.maxCnxns", "'abc' is not an integer")


def test_max_cnxns_limits_all_clients_together():
    """maxCnxns (ZooKeeper 3.6+) is enforced, not accepted and ignored: the third client of
    two allowed is closed at once."""
    with ZkpyServer(max_cnxns=2) as zk:
        clients = [KazooClient(zk.connect_string, timeout=5) for _ in range(2)]
        for c in clients:
            c.start(timeout=10)
        extra = KazooClient(zk.connect_string, timeout=2, connection_retry={"max_tries": 1})
        try:
            with pytest.raises(Exception):
                extra.start(timeout=2)
            clients[0].stop()
            clients[0].close()
            extra2 = KazooClient(zk.connect_string, timeout=5)
            extra2.start(timeout=10)  # a freed slot takes a new client
            extra2.stop()
            extra2.close()
        finally:
            extra.stop()
            extra.close()
            for c in clients[1:]:
                c.stop()
                c.close()


@pytest.mark.parametrize("tool", ["dump-log", "dump-snapshot"])
def test_dump_of_a_missing_file(tmp_path, tool):
    one_line(zkpy(tool, str(tmp_path / "nope")), 2, str(tmp_path / "nope"), "does not exist")


@pytest.mark.parametrize("tool", ["check", "purge"])
def test_tools_refuse_a_missing_data_dir(tmp_path, tool):
    one_line(zkpy(tool, str(tmp_path / "nope")), 2, str(tmp_path / "nope"), "does not exist")
    # An existing directory that is no dataDir is not "ok" either.
    one_line(zkpy(tool, str(tmp_path)), 2, "no version-2 directory")


def test_purge_refuses_to_keep_fewer_than_three(tmp_path):
    (tmp_path / "version-2").mkdir()
    one_line(zkpy("purge", "-n", "1", str(tmp_path)), 2, "-n 1", "at least 3")


def _data_dir_with_a_log(tmp_path) -> str:
    data = tmp_path / "data"
    with ZkpyServer(data_dir=str(data), data_log_dir=str(data)) as zk:
        client = KazooClient(zk.connect_string, timeout=10)
        client.start(timeout=10)
        for i in range(300):
            client.create(f"/n{i}", b"x" * 50)
        client.stop()
        client.close()
    return str(data)


def test_dump_log_into_a_closed_pipe_ends_quietly(tmp_path):
    data = _data_dir_with_a_log(tmp_path)
    log_dir = os.path.join(data, "version-2")
    segment = next(os.path.join(log_dir, f) for f in sorted(os.listdir(log_dir)) if f.startswith("log."))
    env = dict(os.environ, PYTHONPATH=ROOT)
    proc = subprocess.Popen([sys.executable, "-m", "zkpy", "dump-log", segment], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=env)
    assert proc.stdout.readline().startswith(b"zxid=")  # what `| head -1` reads, then it exits
    proc.stdout.close()
    stderr = proc.stderr.read().decode()
    proc.wait(timeout=20)
    assert "Traceback" not in stderr and "BrokenPipe" not in stderr, stderr
    assert proc.returncode in (0, -13), proc.returncode  # done, or ended by SIGPIPE as `cat` is
    assert zkpy("check", data).returncode == 0  # and the tools still work on good input


def test_log_level_after_the_command_and_unknown_levels(tmp_path):
    data = _data_dir_with_a_log(tmp_path)
    assert zkpy("check", data, "--log-level", "warning").stderr == ""  # the INFO "recovered" line is gone
    result = zkpy("check", data, "--log-level", "LOUD")
    assert result.returncode == 2 and "invalid choice: 'LOUD'" in result.stderr


def test_version():
    import zkpy as package

    result = zkpy("--version")
    assert result.returncode == 0 and result.stdout.strip() == f"zkpy {package.__version__}"


def test_own_server_line_naming_another_host(tmp_path):
    """Across hosts the usual slip: this member's server line names an address this machine
    does not have (10.213.0.99 is never assigned here; a bind sends nothing)."""
    data = tmp_path / "data"
    data.mkdir()
    (data / "myid").write_text("1")
    cfg = write_cfg(tmp_path, f"dataDir={data}\nclientPort=0\n"
                    "server.1=10.213.0.99:23001:24001\nserver.2=127.0.0.1:23002:24002\n")
    result = zkpy("serve", cfg)
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert "server.1" in last and "10.213.0.99:23001" in last and "quorumListenOnAllIPs=true" in last, last
