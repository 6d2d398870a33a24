"""Three members on three "hosts": network namespaces this test creates on this machine.

Each member is a `zkpy serve` process in its own namespace (`ip netns exec`), with its own
address on a private bridge (10.213.0.0/24, nothing else is ever addressed) and a host name
in the server lines, resolved through the namespace's hosts file (`ip netns exec` bind-mounts
/etc/netns/NS/hosts over /etc/hosts).  The zoo.cfg has no clientPortAddress, so a member
serves on every interface of its host, as ZooKeeper does; the kazoo clients reach them from
this (the root) namespace through the bridge.  Member 2 sets quorumListenOnAllIPs.

The tests share one ensemble and run in order; each leaves all three members serving.
Everything the test creates has the prefix `zkpyns` and is removed afterwards, and at start
when a crashed run left it behind.  Skipped only where namespaces cannot be created.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from typing import Callable, Iterator

import pytest
from kazoo.client import KazooClient
from kazoo.exceptions import KazooException

import zkpy
from zkpy.testing.external import four_letter_word

PREFIX = "zkpyns"
BRIDGE = f"{PREFIX}-br"
BRIDGE_ADDRESS = "10.213.0.1"
ETC_NETNS = "/etc/netns"
CLIENT_PORT = 2181
IDS = (1, 2, 3)
ZKPY_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(zkpy.__file__)))


def _run(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(args, capture_output=True, text=True, timeout=20, check=check)


def _why_no_namespaces() -> str | None:
    if os.geteuid() != 0:
        return "creating network namespaces needs root"
    if shutil.which("ip") is None:
        return "creating network namespaces needs iproute2's `ip`"
    probe = f"{PREFIX}-probe"
    made = _run("ip", "netns", "add", probe, check=False)
    if made.returncode != 0:
        return f"`ip netns add` fails here: {made.stderr.strip()}"
    _run("ip", "netns", "del", probe, check=False)
    return None


_NO_NAMESPACES = _why_no_namespaces()
pytestmark = pytest.mark.skipif(_NO_NAMESPACES is not None, reason=str(_NO_NAMESPACES))


def _ns(sid: int) -> str:
    return f"{PREFIX}{sid}"


def _host(sid: int) -> str:
    return f"zk{sid}.{PREFIX}.test"


def remove_leftovers() -> None:
    """Namespaces (and the processes in them), links and hosts files named with PREFIX."""
    for line in _run("ip", "netns", "list").stdout.splitlines():
        name = line.split()[0] if line.split() else ""
        if name.startswith(PREFIX):
            for pid in _run("ip", "netns", "pids", name, check=False).stdout.split():
                try:
                    os.kill(int(pid), signal.SIGKILL)
                except ProcessLookupError:
                    pass
            _run("ip", "netns", "del", name, check=False)
    for line in _run("ip", "-o", "link", "show").stdout.splitlines():
        name = line.split(":")[1].strip().split("@")[0]
        if name.startswith(PREFIX):
            _run("ip", "link", "del", name, check=False)
    if os.path.isdir(ETC_NETNS):
        for name in os.listdir(ETC_NETNS):
            if name.startswith(PREFIX):
                shutil.rmtree(os.path.join(ETC_NETNS, name), ignore_errors=True)


class Network:
    """A bridge in the root namespace and one namespace per member, each with a veth into it."""

    def __init__(self) -> None:
        self.addresses = {sid: f"10.213.0.{10 + sid}" for sid in IDS}
        self.made_etc_netns = not os.path.isdir(ETC_NETNS)

    def create(self) -> None:
        _run("ip", "link", "add", BRIDGE, "type", "bridge")
        _run("ip", "addr", "add", f"{BRIDGE_ADDRESS}/24", "dev", BRIDGE)
        _run("ip", "link", "set", BRIDGE, "up")
        for sid in IDS:
            ns = _ns(sid)
            _run("ip", "netns", "add", ns)
            _run("ip", "-n", ns, "link", "set", "lo", "up")
            _run("ip", "link", "add", f"{ns}-v", "type", "veth", "peer", "name", "eth0", "netns", ns)
            _run("ip", "link", "set", f"{ns}-v", "master", BRIDGE, "up")
            _run("ip", "-n", ns, "addr", "add", f"{self.addresses[sid]}/24", "dev", "eth0")
            _run("ip", "-n", ns, "link", "set", "eth0", "up")
        self.write_hosts()

    def write_hosts(self) -> None:
        """Every namespace's hosts file names every member.  Rewritten in place: a running
        process sees the file bind-mounted at its start, so a new inode would not reach it."""
        text = "127.0.0.1 localhost\n" + "".join(f"{a} {_host(s)}\n" for s, a in self.addresses.items())
        for sid in IDS:
            os.makedirs(os.path.join(ETC_NETNS, _ns(sid)), exist_ok=True)
            with open(os.path.join(ETC_NETNS, _ns(sid), "hosts"), "w") as f:
                f.write(text)

    def move(self, sid: int, address: str) -> None:
        """Give member `sid`'s host a new address (its old one is gone) and tell every hosts file."""
        ns = _ns(sid)
        _run("ip", "-n", ns, "addr", "del", f"{self.addresses[sid]}/24", "dev", "eth0")
        _run("ip", "-n", ns, "addr", "add", f"{address}/24", "dev", "eth0")
        self.addresses[sid] = address
        self.write_hosts()

    def cut(self, sid: int) -> None:
        _run("ip", "link", "set", f"{_ns(sid)}-v", "down")

    def heal(self, sid: int) -> None:
        _run("ip", "link", "set", f"{_ns(sid)}-v", "up")

    def destroy(self) -> None:
        remove_leftovers()
        if self.made_etc_netns and os.path.isdir(ETC_NETNS) and not os.listdir(ETC_NETNS):
            os.rmdir(ETC_NETNS)


class NetnsEnsemble:
    """The members' processes, their data dirs and logs, and the clients the tests open."""

    def __init__(self, net: Network, base: str) -> None:
        self.net = net
        self.base = base
        self.procs: dict[int, subprocess.Popen] = {}
        self.clients: list[KazooClient] = []
        for sid in IDS:
            d = os.path.join(base, f"server{sid}")
            os.makedirs(d)
            with open(os.path.join(d, "myid"), "w") as f:
                f.write(str(sid))
            lines = ["tickTime=200", "initLimit=10", "syncLimit=5", f"dataDir={d}", f"clientPort={CLIENT_PORT}",
                     "4lw.commands.whitelist=*", "admin.enableServer=false"]  # no clientPortAddress: all interfaces
            if sid == 2:
                lines.append("quorumListenOnAllIPs=true")
            lines += [f"server.{i}={_host(i)}:2888:3888" for i in IDS]
            with open(os.path.join(d, "zoo.cfg"), "w") as f:
                f.write("\n".join(lines) + "\n")

    def start(self, sid: int) -> None:
        d = os.path.join(self.base, f"server{sid}")
        env = dict(os.environ, PYTHONPATH=ZKPY_ROOT)
        with open(os.path.join(d, "server.log"), "ab") as out:
            self.procs[sid] = subprocess.Popen(
                ["ip", "netns", "exec", _ns(sid), sys.executable, "-m", "zkpy", "serve", os.path.join(d, "zoo.cfg")],
                stdout=out, stderr=subprocess.STDOUT, env=env, cwd=d)

    def kill(self, sid: int, sig: int = signal.SIGKILL) -> None:
        proc = self.procs.pop(sid)
        proc.send_signal(sig)
        proc.wait(timeout=15)

    def mode(self, sid: int) -> str | None:
        """'leader', 'follower' (serving), or None (not serving or not reachable)."""
        try:
            out = four_letter_word(self.net.addresses[sid], CLIENT_PORT, "srvr", timeout=1)
        except OSError:
            return None
        for line in out.splitlines():
            if line.startswith("Mode:"):
                mode = line.split(":", 1)[1].strip()
                return mode if mode in ("leader", "follower") else None
        return None

    def wait_serving(self, ids=IDS, timeout: float = 30) -> int:
        """Until every member in `ids` serves and one of them leads; returns the leader."""
        modes: list[str | None] = []

        def ready() -> bool:
            modes[:] = [self.mode(s) for s in ids]
            return None not in modes and modes.count("leader") == 1
        wait_for(ready, timeout, f"members {list(ids)} serving under one leader", self.logs)
        return list(ids)[modes.index("leader")]

    def client(self, *ids: int) -> KazooClient:
        hosts = ",".join(f"{self.net.addresses[s]}:{CLIENT_PORT}" for s in ids)
        client = KazooClient(hosts, timeout=10, connection_retry={"max_tries": -1, "delay": 0.1, "max_delay": 1})
        self.clients.append(client)
        client.start(timeout=20)
        return client

    def logs(self) -> str:
        out = []
        for sid in IDS:
            path = os.path.join(self.base, f"server{sid}", "server.log")
            if os.path.exists(path):
                with open(path, errors="replace") as f:
                    out.append(f"--- server {sid}\n" + "".join(f.readlines()[-30:]))
        return "\n".join(out)

    def stop_clients(self) -> None:
        """After each test, while the members they know are where they were."""
        for client in self.clients:
            try:
                client.stop()
                client.close()
            except Exception:  # noqa: BLE001 - cleanup goes on
                pass
        self.clients.clear()

    def close(self) -> None:
        self.stop_clients()
        for proc in self.procs.values():
            proc.kill()
            proc.wait(timeout=15)
        self.procs.clear()


def wait_for(cond: Callable[[], bool], timeout: float, what: str, context: Callable[[], str] = str) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout}s: {what}\n{context()}")
        time.sleep(0.2)


def tree(client: KazooClient) -> dict[str, tuple]:
    """Every znode outside /zookeeper as this member serves it: data and the whole Stat."""
    client.sync("/")
    out: dict[str, tuple] = {}
    stack = ["/"]
    while stack:
        path = stack.pop()
        data, stat = client.get(path)
        out[path] = (data, tuple(stat))
        for child in client.get_children(path):
            full = path.rstrip("/") + "/" + child
            if full != "/zookeeper":
                stack.append(full)
    return out


def assert_replicas_identical(ens: NetnsEnsemble, acked: list[str]) -> None:
    trees = {}
    for sid in IDS:
        client = ens.client(sid)
        trees[sid] = tree(client)
        client.stop()
    missing = {sid: [p for p in acked if p not in t] for sid, t in trees.items()}
    assert all(not m for m in missing.values()), f"acknowledged writes lost: {missing}"
    assert trees[1] == trees[2] == trees[3]


def write_until(client: KazooClient, prefix: str, count: int) -> list[str]:
    """`count` acknowledged creates (a failed one is retried under a new name: it may or may not exist)."""
    acked: list[str] = []
    n = 0
    deadline = time.monotonic() + 30
    while len(acked) < count and time.monotonic() < deadline:
        path = f"{prefix}-{n:04d}"
        n += 1
        try:
            client.create(path, path.encode(), makepath=True)
            acked.append(path)
        except KazooException:
            time.sleep(0.1)
    assert len(acked) == count, f"only {len(acked)} of {count} writes acknowledged in 30 s"
    return acked


@pytest.fixture(scope="module")
def ens() -> Iterator[NetnsEnsemble]:
    remove_leftovers()
    net = Network()
    base = tempfile.mkdtemp(prefix=f"{PREFIX}-")
    ensemble = None
    try:
        net.create()
        ensemble = NetnsEnsemble(net, base)
        for sid in IDS:
            ensemble.start(sid)
        ensemble.wait_serving()
        yield ensemble
    finally:
        if ensemble is not None:
            ensemble.close()
        net.destroy()
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(autouse=True)
def _clients_stopped(ens: NetnsEnsemble) -> Iterator[None]:
    yield
    ens.stop_clients()


def _connects_in(sid: int, host: str, port: int) -> bool:
    """Whether a TCP connect from inside member `sid`'s namespace to host:port succeeds."""
    code = (f"import socket\ntry:\n    socket.create_connection(({host!r}, {port}), timeout=2).close()\n"
            "except OSError:\n    raise SystemExit(1)")
    return _run("ip", "netns", "exec", _ns(sid), sys.executable, "-c", code, check=False).returncode == 0


def test_members_on_their_own_hosts_elect_and_serve(ens):
    writer = ens.client(1)
    writer.create("/hosts/hello", b"from zk1", makepath=True)
    reader = ens.client(3)
    reader.sync("/hosts/hello")
    assert reader.get("/hosts/hello")[0] == b"from zk1"
    # The peer listener: on the server line's address, or everywhere with quorumListenOnAllIPs.
    assert _connects_in(2, "127.0.0.1", 2888)
    assert not _connects_in(1, "127.0.0.1", 2888)
    assert _connects_in(1, ens.net.addresses[1], 2888)


def test_sigkilled_leader_the_others_go_on_and_it_catches_up(ens):
    leader = ens.wait_serving()
    before = write_until(ens.client(leader), "/kill/before", 5)
    ens.kill(leader)
    survivors = [s for s in IDS if s != leader]
    ens.wait_serving(survivors)
    during = write_until(ens.client(*survivors), "/kill/during", 20)
    ens.start(leader)
    ens.wait_serving()
    assert_replicas_identical(ens, before + during)


def test_partitioned_leader_no_acknowledged_write_lost(ens):
    leader = ens.wait_serving()
    majority = [s for s in IDS if s != leader]
    writer = ens.client(*majority)
    ens.net.cut(leader)
    try:
        ens.wait_serving(majority)  # a new leader among the two that still see each other
        acked = write_until(writer, "/partition/during", 20)
    finally:
        ens.net.heal(leader)
    ens.wait_serving()
    acked += write_until(writer, "/partition/after", 5)
    assert_replicas_identical(ens, acked)


def test_member_on_a_new_address_is_found_by_its_name(ens):
    """Member 3 stops, its host gets another address and every hosts file says so; restarted,
    it rejoins: the leader reaches it only by dialling its name again (a leader sends on the
    link it dialled), so the write made after the rejoin, read on member 3, proves it."""
    ens.wait_serving()
    ens.kill(3, signal.SIGTERM)
    ens.net.move(3, "10.213.0.23")
    ens.start(3)
    ens.wait_serving()
    after = write_until(ens.client(1), "/moved/after", 3)
    reader = ens.client(3)
    reader.sync("/moved")
    assert sorted(reader.get_children("/moved")) == [p.rsplit("/", 1)[1] for p in after]
    assert_replicas_identical(ens, after)


def test_member_whose_host_vanished_comes_back_on_a_new_address(ens):
    """As when a machine dies and its replacement gets another address: member 3's link is
    cut before it is killed, so its connections never see a FIN and the others' links to its
    old address stay open, unanswered.  They must give up on them (TCP_USER_TIMEOUT of
    syncLimit ticks) and dial the name again, or member 3 never hears from the leader."""
    ens.wait_serving()
    ens.net.cut(3)
    ens.kill(3)
    ens.net.move(3, "10.213.0.33")
    ens.net.heal(3)
    ens.start(3)
    ens.wait_serving()
    after = write_until(ens.client(1), "/vanished/after", 3)
    reader = ens.client(3)
    reader.sync("/vanished")
    assert sorted(reader.get_children("/vanished")) == [p.rsplit("/", 1)[1] for p in after]
    assert_replicas_identical(ens, after)
