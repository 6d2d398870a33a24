"""pytest plugin (entry point `zkpy`): fixtures for tests that need a ZooKeeper server.

    def test_lock(zkpy_client):
        zkpy_client.create("/x", b"1")

`zkpy_server` is a fresh in-process server per test (it starts in milliseconds);
`zkpy_client` is a started kazoo client connected to it.  `zkpy_ensemble` is a fresh
three-process ensemble (about 0.3 s to start) whose peer links go through a proxy, for
fault injection: `kill`/`start_server`, `pause`/`resume`, `isolate`/`partition`/`heal`.
`zkpy_inprocess_ensemble` is the same with its members in this process (tens of
milliseconds to start; `kill` is a stop, not a SIGKILL: see InProcessEnsemble).
"""

from __future__ import annotations

from typing import Iterator

import pytest

from .ensemble import Ensemble
from .inprocess import ZkpyServer
from .inprocess_ensemble import InProcessEnsemble


@pytest.fixture
def zkpy_server() -> Iterator[ZkpyServer]:
    with ZkpyServer() as server:
        yield server


@pytest.fixture
def zkpy_client(zkpy_server: ZkpyServer):
    from kazoo.client import KazooClient

    client = KazooClient(hosts=zkpy_server.connect_string, timeout=10)
    client.start(timeout=10)
    try:
        yield client
    finally:
        client.stop()
        client.close()


@pytest.fixture
def zkpy_ensemble() -> Iterator[Ensemble]:
    with Ensemble(3, proxied=True) as ensemble:
        yield ensemble


@pytest.fixture
def zkpy_inprocess_ensemble() -> Iterator[InProcessEnsemble]:
    with InProcessEnsemble(3, proxied=True) as ensemble:
        yield ensemble
