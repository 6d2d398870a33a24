import pytest
from kazoo.client import KazooClient

from zkpy.testing import ZkpyServer


@pytest.fixture
def server():
    with ZkpyServer(tick_time=200, extended_types=True) as s:
        yield s


@pytest.fixture
def make_client(server):
    clients = []

    def make(**kw) -> KazooClient:
        kw.setdefault("timeout", 10)
        c = KazooClient(hosts=server.connect_string, **kw)
        c.start(timeout=10)
        clients.append(c)
        return c

    yield make
    for c in clients:
        try:
            c.stop()
            c.close()
        except Exception:
            pass


@pytest.fixture
def zk(make_client):
    return make_client()
