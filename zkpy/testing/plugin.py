"""pytest plugin (entry point `zkpy`): fixtures for tests that need a ZooKeeper server.

    def test_lock(zkpy_client):
        zkpy_client.create("/x", b"1")

`zkpy_server` is a fresh in-process server per test (it starts in milliseconds);
`zkpy_client` is a started kazoo client connected to it.
"""

from __future__ import annotations

from typing import Iterator

import pytest

from .inprocess import ZkpyServer


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
