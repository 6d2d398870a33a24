"""Ports of test servers: held blocks no one else gets, fixed ports on request, the port a
process server reports, and an ensemble start that fails at once with the member's error."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest
from kazoo.client import KazooClient

from zkpy.testing import Ensemble, InProcessEnsemble, ZkpyServer
from zkpy.testing.external import ZkpyProcess
from zkpy.testing.ports import BLOCK, PortBlock, ephemeral_range

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Another process takes blocks the way a parallel test run would, but always trying them in
# the same order (no shuffle), so that without the lock it would pick the ones we hold.
_OTHER_PROCESS = """
import json, random, sys
random.shuffle = lambda blocks: blocks.sort()
from zkpy.testing.ports import PortBlock
held = [PortBlock(int(sys.argv[1])) for _ in range(int(sys.argv[2]))]
print(json.dumps([p for b in held for p in b.ports]))
"""


def _created(hosts: str, path: str) -> None:
    client = KazooClient(hosts, timeout=10)
    client.start(10)
    try:
        client.create(path, b"")
    finally:
        client.stop()
        client.close()


def test_held_blocks_are_not_handed_out_to_another_process(monkeypatch):
    monkeypatch.setattr("random.shuffle", lambda blocks: blocks.sort())
    ours = [PortBlock(9) for _ in range(3)]
    try:
        low, _ = ephemeral_range()
        mine = {p for b in ours for p in b.ports}
        assert len(mine) == 27 and max(mine) < low
        out = subprocess.run([sys.executable, "-c", _OTHER_PROCESS, "9", "3"], capture_output=True, text=True,
                             timeout=60, env={**os.environ, "PYTHONPATH": ROOT}, check=True).stdout
        theirs = set(json.loads(out))
        assert len(theirs) == 27 and not theirs & mine
    finally:
        for b in ours:
            b.release()
    # Released (or dead holders'), the blocks are free again.
    again = PortBlock(9)
    try:
        assert again.ports == ours[0].ports
    finally:
        again.release()


def test_block_size_is_bounded():
    with pytest.raises(ValueError):
        PortBlock(BLOCK + 1)


def test_fixed_base_port_for_servers_and_ensembles():
    block = PortBlock(9)  # nobody else takes these while we hold them
    base = block.ports[0]
    block.release()
    with ZkpyServer(base_port=base) as zk:
        assert zk.port == base
        _created(f"127.0.0.1:{base}", "/fixed")
    with InProcessEnsemble(3, base_port=base) as ens:
        assert ens.client_ports == {1: base, 2: base + 1, 3: base + 2}
        assert ens.peer_ports == {1: base + 3, 2: base + 4, 3: base + 5}
        assert ens.election_ports == {1: base + 6, 2: base + 7, 3: base + 8}
        _created(f"127.0.0.1:{base + 2}", "/fixed")


def test_ensembles_get_disjoint_ports_below_the_ephemeral_range():
    low, _ = ephemeral_range()
    with InProcessEnsemble(3) as a, InProcessEnsemble(3) as b:
        ports_a = {*a.client_ports.values(), *a.peer_ports.values(), *a.election_ports.values()}
        ports_b = {*b.client_ports.values(), *b.peer_ports.values(), *b.election_ports.values()}
        assert len(ports_a) == len(ports_b) == 9 and not ports_a & ports_b
        assert max(ports_a | ports_b) < low
        _created(a.connect_string, "/a")
        _created(b.connect_string, "/b")


def test_process_server_binds_port_zero_and_reports_its_port():
    with ZkpyProcess() as server:
        with open(os.path.join(server.workdir, "zoo.cfg")) as f:
            assert "clientPort=0\n" in f.read()
        assert server.port > 0
        _created(server.connect_string, "/reported")
        port = server.port
        server.kill()
        server.start()  # a restart keeps its port (clients come back to it)
        assert server.port == port
        _created(server.connect_string, "/again")


def test_ensemble_with_a_bad_setting_fails_at_once_with_the_members_error():
    started = time.monotonic()
    ens = Ensemble(3, settings={"globalOutstandingLimit": "lots"}, startup_timeout=20)
    with pytest.raises(RuntimeError) as failure:
        ens.start()
    assert time.monotonic() - started < 10  # every member exits in well under a second
    message = str(failure.value)
    assert "members exited while it waited" in message and ": 2" in message  # zkpy's exit code for a bad config
    assert "globalOutstandingLimit: 'lots' is not an integer" in message
    assert not os.path.exists(ens.base)  # cleaned up
