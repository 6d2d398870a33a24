"""zoo.cfg and -D system properties, as ZooKeeper reads them; `zkpy serve` exit codes."""

import subprocess
import sys

import pytest

from zkpy.server.config import ConfigError, load, parse_properties


def _cfg(tmp_path, text: str) -> str:
    p = tmp_path / "zoo.cfg"
    p.write_text(text)
    return str(p)


def test_defaults():
    c = load(None)
    assert (c.client_port_address, c.client_port, c.tick_time) == ("127.0.0.1", 2181, 3000)
    assert (c.min_timeout, c.max_timeout) == (6000, 60000)
    assert c.four_letter_words == frozenset({"srvr"})
    assert c.jute_max_buffer == 0xFFFFF


def test_zoo_cfg(tmp_path):
    c = load(_cfg(tmp_path, """
# comment
tickTime=500
dataDir=/tmp/x
clientPort=2999
clientPortAddress=127.0.0.2
maxClientCnxns=5
minSessionTimeout=1500
maxSessionTimeout=9000
4lw.commands.whitelist=ruok, mntr
extendedTypesEnabled=true
server.1=127.0.0.1:2888:3888;2181
server.2=127.0.0.1:2889:3889:observer;127.0.0.1:2182
"""))
    assert (c.tick_time, c.data_dir, c.data_log_dir, c.client_port, c.client_port_address) == (500, "/tmp/x", "/tmp/x", 2999, "127.0.0.2")
    assert (c.max_client_cnxns, c.min_timeout, c.max_timeout) == (5, 1500, 9000)
    assert c.four_letter_words == {"ruok", "mntr"}
    assert c.extended_types  # became zookeeper.extendedTypesEnabled, as in QuorumPeerConfig
    assert c.servers[1].client_port == 2181 and c.servers[2].role == "observer" and c.servers[2].client_host == "127.0.0.1"


def test_properties():
    c = load(None, parse_properties(["-Dzookeeper.DigestAuthenticationProvider.superDigest=super:abc=",
                                     "-Djute.maxbuffer=4096", "-Dzookeeper.4lw.commands.whitelist=*"]))
    assert c.super_digest == "super:abc=" and c.jute_max_buffer == 4096 and "dump" in c.four_letter_words
    with pytest.raises(ConfigError):
        parse_properties(["--oops"])


@pytest.mark.parametrize("line", ["tickTime=abc", "clientPort=70000", "maxClientCnxns=-1", "server.1=host-only",
                                  "forceSync=maybe", "minSessionTimeout=10000\nmaxSessionTimeout=100"])
def test_invalid_values(tmp_path, line):
    with pytest.raises(ConfigError):
        load(_cfg(tmp_path, line + "\n"))


def test_serve_rejects_invalid_config_with_exit_2(tmp_path):
    bad = _cfg(tmp_path, "tickTime=zero\n")
    r = subprocess.run([sys.executable, "-m", "zkpy", "serve", bad], capture_output=True, text=True, timeout=30)
    assert r.returncode == 2 and "tickTime" in r.stderr
    nodir = tmp_path / "nodir.cfg"
    nodir.write_text("clientPort=0\nclientPortAddress=127.0.0.1\n")
    r = subprocess.run([sys.executable, "-m", "zkpy", "serve", str(nodir)], capture_output=True, text=True, timeout=30)
    assert r.returncode == 2 and "dataDir" in r.stderr


def test_unknown_key_warns(tmp_path):
    cfg = _cfg(tmp_path, f"dataDir={tmp_path}\nclientPort=0\nclientPortAddress=127.0.0.1\nsomeUnknownKey=1\n")
    p = subprocess.Popen([sys.executable, "-m", "zkpy", "serve", cfg], stderr=subprocess.PIPE, text=True)
    try:
        lines = []
        for line in p.stderr:
            lines.append(line)
            if "serving" in line:
                break
    finally:
        p.terminate()
        p.wait(10)
    text = "".join(lines)
    assert "unknown setting" in text and "someUnknownKey" in text


def test_one_server_line_runs_standalone(tmp_path):
    """A zoo.cfg with a single server.N line (as many container images ship) is a standalone
    server, as in ZooKeeper: it serves, and srvr says so."""
    from kazoo.client import KazooClient

    from zkpy.testing import ZkpyServer

    cfg = tmp_path / "zoo.cfg"
    cfg.write_text(f"dataDir={tmp_path}\nclientPort=0\nclientPortAddress=127.0.0.1\n4lw.commands.whitelist=*\n"
                   "server.1=127.0.0.1:2888:3888\n")
    with ZkpyServer(config=load(str(cfg))) as zk:
        client = KazooClient(zk.connect_string, timeout=5)
        client.start(timeout=10)
        try:
            client.create("/one", b"1")
            assert client.get("/one")[0] == b"1"
        finally:
            client.stop()
            client.close()
        assert "Mode: standalone" in zk.four_letter_word("srvr")
