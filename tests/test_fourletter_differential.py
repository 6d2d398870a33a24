"""Four-letter words against Apache ZooKeeper 3.8: the same operations (two sessions, creates,
ephemerals, a data, an exist, a child and a persistent watch, a fired watch) on ZooKeeper and
on zkpy, standalone and as 3-node ensembles, then every word on each; the answers are compared
by layout (line structure, keys in order) and by the values that must agree (modes, counts of
znodes, watches, sessions, connections, the last operation of each session), with times, ids,
ports, versions and latencies masked.  `mntr` must have at least 90% of ZooKeeper's keys, no
key ZooKeeper lacks, ZooKeeper's value types, and the values that must agree equal
(tests/mntr_support.py).

Skips without Apache ZooKeeper 3.8 (Debian's `zookeeper` package), fails instead under `CI`.
`ZKPY_4LW_DUMP=file` writes both sides' raw answers, to read when this fails.
"""

from __future__ import annotations

import json
import os
import re
import socket
import struct
import time

import pytest
from kazoo.client import KazooClient

from zkpy.protocol.codes import Op
from zkpy.testing.client import RawClient
from zkpy.testing.ensemble import Ensemble
from mntr_support import coverage, monitor_problems
from zkpy.testing.external import (
    ApacheZooKeeper,
    ZkpyProcess,
    apache_zookeeper_available,
)

# Reading words first; the ones that change what others report (crst, srst, stmk) last, each
# followed by a word that shows its effect.
WORDS = ("ruok", "srvr", "stat", "conf", "cons", "envi", "mntr", "wchs", "wchc", "wchp", "dump", "isro", "dirs",
         "gtmk", "hash", "crst", "cons", "srst", "srvr", "stmk", "gtmk")
TRACE_MASK = 0x1F3
SETTINGS = {"4lw.commands.whitelist": "*"}
# Long sessions: no client pings while the words run (a ping would be a session's last operation),
# and the raw client, which does not ping, keeps its session.
SESSION_S = 30.0


def _require_zookeeper() -> None:
    if not apache_zookeeper_available():
        message = "Apache ZooKeeper 3.8 is not installed (apt-get install zookeeper)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)


def send(address: str, payload: bytes, timeout: float = 10.0) -> str:
    """A command's answer: `payload` out, everything until the server closes."""
    host, port = address.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=timeout) as s:
        s.sendall(payload)
        chunks = []
        while data := s.recv(65536):
            chunks.append(data)
    return b"".join(chunks).decode("utf-8", "replace")


def payload(word: str) -> bytes:
    return word.encode() + (struct.pack(">q", TRACE_MASK) if word == "stmk" else b"")


def wait_for(condition, timeout: float = 30.0, what: str = "a condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


class Workload:
    """Session A (kazoo) owns the znodes, two ephemerals and a data watch that a change fires;
    session B (kazoo) has a data, an exist and a child watch; session P (a raw client: kazoo
    has no addWatch) a persistent watch."""

    def __init__(self, connect_string: str) -> None:
        self.a = KazooClient(hosts=connect_string, timeout=SESSION_S)
        self.a.start(timeout=10)
        self.b = KazooClient(hosts=connect_string, timeout=SESSION_S)
        self.b.start(timeout=10)
        host, port = connect_string.rsplit(":", 1)
        self.p = RawClient(host, int(port), timeout_ms=int(SESSION_S * 1000))
        a, b = self.a, self.b
        a.create("/d", b"data")
        a.create("/d/e1", ephemeral=True)
        a.create("/d/e2", b"x", ephemeral=True)
        a.get("/d", watch=lambda e: None)
        a.set("/d", b"more")  # fires A's data watch
        b.get("/d", watch=lambda e: None)
        b.exists("/d/missing", watch=lambda e: None)
        b.get_children("/d", watch=lambda e: None)  # in watch_count, not in ZooKeeper's wchs/wchc/wchp
        assert self.p.call(Op.ADD_WATCH, ("/d/e1", 0))[0] == 0
        a.exists("/d")  # A's last operation: EXIS
        self.labels = {a.client_id[0]: "A", b.client_id[0]: "B", self.p.session_id: "P"}

    def close(self) -> None:
        for c in (self.a, self.b):
            c.stop()
            c.close()
        self.p.close()


def answers(address: str) -> list[tuple[str, str]]:
    return [(word, send(address, payload(word))) for word in WORDS]


# ------------------------------------------------------------ masking

_IP_PORT = re.compile(r"/127\.0\.0\.1:\d+")


def label_sessions(text: str, labels: dict[int, str]) -> str:
    """Session ids differ between servers: name them after the workload's sessions."""
    return re.sub(r"0x([0-9a-f]{6,16})\b", lambda m: labels.get(int(m.group(1), 16), m.group(0)), text)


def cons_fields(line: str) -> tuple[str, dict[str, str]]:
    """A cons/stat client line: (its layout, {field: value})."""
    m = re.match(r"^ (/[\d.]+:\d+)\[(\d+)\]\((.*)\)$", line)
    assert m, f"not a client line: {line!r}"
    fields = dict(f.split("=", 1) for f in m.group(3).split(","))
    return f" IP[{m.group(2)}](" + ",".join(fields) + ")", fields


# Values of a client line that must agree (the rest are times, ports and counts of pings).
CONS_AGREE = ("queued", "sid", "lop", "to", "lcxid")


def client_lines(lines: list[str], labels: dict[int, str], zxids: bool) -> list[tuple]:
    out = []
    for line in lines:
        layout, fields = cons_fields(label_sessions(line, labels))
        agree = tuple((k, fields[k]) for k in CONS_AGREE if k in fields)
        if zxids and "lzxid" in fields:
            agree += (("lzxid", fields["lzxid"]),)
        if "lresp" in fields and fields["lresp"] == "0":
            agree += (("lresp", "0"), ("llat", fields["llat"]), ("maxlat", fields["maxlat"]))  # after crst
        out.append((layout, agree))
    return sorted(out, key=repr)


def split_srvr(text: str) -> tuple[list[str], list[str]]:
    """(key: value lines, client lines of stat)."""
    keyed, clients = [], []
    for line in text.splitlines():
        (clients if line.startswith(" /") else keyed).append(line)
    return keyed, clients


SRVR_AGREE = ("Connections", "Outstanding", "Mode", "Node count")


def normal_srvr(text: str, labels: dict[int, str], zxids: bool) -> dict:
    keyed, clients = split_srvr(text)
    keys = [line.split(":", 1)[0] if ":" in line else line for line in keyed]
    values = dict(line.split(": ", 1) for line in keyed if ": " in line)
    agree = {k: values[k] for k in SRVR_AGREE}
    if zxids:
        agree["Zxid"] = values["Zxid"]
    latency = [float(v) for v in values["Latency min/avg/max"].split("/")]
    assert latency[0] <= latency[1] <= latency[2], values
    return {"keys": keys, "agree": agree, "clients": client_lines(clients, labels, zxids),
            "counted": int(values["Received"]) > 0}


CONF_AGREE = ("clientPort", "secureClientPort", "tickTime", "maxClientCnxns", "minSessionTimeout",
              "maxSessionTimeout", "clientPortListenBacklog", "serverId")


def normal_conf(text: str, ports: dict[str, str]) -> dict:
    lines = [line for line in text.splitlines() if line]
    values = dict(line.split("=", 1) for line in lines if "=" in line)
    values["clientPort"] = ports.get(values["clientPort"], "?")
    values["serverId"] = ports.get("sid " + values["serverId"], values["serverId"])  # by role on ensembles
    dirs = {k: int(values[k]) > 0 for k in ("dataDirSize", "dataLogSize")}
    members = [re.sub(r":\d+", ":P", line) for line in lines if line.startswith("server.")]
    return {"keys": [line.split("=", 1)[0] for line in lines], "agree": {k: values[k] for k in CONF_AGREE if k in values},
            "dirs": dirs, "members": members, "peerType": values.get("peerType")}


def mntr_values(text: str) -> dict[str, str]:
    return dict(line.split("\t", 1) for line in text.splitlines())


def watch_lists(text: str, labels: dict[int, str]) -> dict[str, list[str]]:
    """wchc/wchp: {head line: its tab-indented lines}, heads with nothing under them left out:
    ZooKeeper 3.8 keeps a connection in its table after its last watch fired (an empty entry,
    listed until the connection closes); zkpy drops it."""
    out: dict[str, list[str]] = {}
    head = None
    for line in label_sessions(text, labels).splitlines():
        if line.startswith("\t"):
            out.setdefault(head, []).append(line[1:])
        elif line:
            head = line
    return {k: sorted(v) for k, v in sorted(out.items())}


def normal_dump(text: str, labels: dict[int, str]) -> list[str]:
    """dump's layout, with the expiry buckets masked: which bucket a session or connection is
    in depends on when it was last heard from, so each section's entries are sorted under one
    bucket line (ZooKeeper's expiry queue also keeps empty, stale buckets until its next pass)."""
    out: list[str] = []
    entries: list[str] = []
    for line in label_sessions(_IP_PORT.sub("IP", text), labels).splitlines():
        if re.match(r"^\d+ expire at .*:$", line):
            if not out[-1].startswith("K expire"):
                out.append("K expire at DATE:")
            continue
        if line.startswith("\t") and out[-1].startswith("K expire"):
            entries.append(line)
            continue
        out.extend(sorted(entries))
        entries = []
        out.append(re.sub(r"^(Session Sets|Connections Sets) \(\d+\)", r"\1 (K)", line))
    return out + sorted(entries)


def normalise(word: str, text: str, labels: dict[int, str], ports: dict[str, str], zxids: bool):
    if word in ("srvr", "stat"):
        return normal_srvr(text, labels, zxids)
    if word == "cons":
        return client_lines([line for line in text.splitlines() if line], labels, zxids), text.endswith(")\n\n")
    if word == "conf":
        return normal_conf(text, ports)
    if word == "mntr":
        return mntr_values(text)
    if word == "envi":
        keys = [line.split("=", 1)[0] for line in text.splitlines()]
        return [k for k in keys if not k.startswith(("java.", "os.memory.", "python.", "process."))]
    if word in ("wchc", "wchp"):
        return watch_lists(text, labels), text.endswith("\n\n")
    if word == "wchs":
        m = re.fullmatch(r"(\d+) connections watching (\d+) paths\nTotal watches:(\d+)\n", text)
        assert m, text
        return m.group(2), m.group(3)
    if word == "dump":
        return normal_dump(text, labels)
    if word == "dirs":
        return [(line.split(": ")[0], int(line.split(": ")[1]) > 0) for line in text.splitlines()]
    return text  # ruok, isro, gtmk, hash, crst, srst, stmk: the whole answer


def compare(zk: list[tuple[str, str]], ours: list[tuple[str, str]], zk_labels: dict, our_labels: dict,
            zk_ports: dict, our_ports: dict, zxids: bool, where: str) -> None:
    problems = []
    for (word, a), (_, b) in zip(zk, ours):
        na = normalise(word, a, zk_labels, zk_ports, zxids)
        nb = normalise(word, b, our_labels, our_ports, zxids)
        if word == "mntr":
            covered, total = coverage(na, nb)
            print(f"mntr {where}: zkpy has {covered} of ZooKeeper's {total} keys ({100 * covered / total:.1f}%)")
            problems += monitor_problems(na, nb, f"mntr ({where})")
            continue
        if na != nb:
            problems.append(f"{word}:\n  zookeeper {na}\n  zkpy      {nb}")
    assert not problems, "\n".join(problems)


def dump(name: str, **sides) -> None:
    if os.environ.get("ZKPY_4LW_DUMP"):
        with open(f"{os.environ['ZKPY_4LW_DUMP']}.{name}", "w") as f:
            json.dump(sides, f, indent=1)


# ------------------------------------------------------------ standalone

def standalone_run(server) -> tuple[list, dict, dict]:
    with server:
        work = Workload(server.connect_string)
        try:
            out = answers(server.connect_string)
        finally:
            work.close()
        return out, work.labels, {str(server.port): "PORT"}


def test_standalone_words_as_apache_zookeeper():
    _require_zookeeper()
    zk, zk_labels, zk_ports = standalone_run(ApacheZooKeeper(config=SETTINGS))
    ours, our_labels, our_ports = standalone_run(ZkpyProcess(config=SETTINGS))
    dump("standalone", zookeeper=zk, zkpy=ours)
    compare(zk, ours, zk_labels, our_labels, zk_ports, our_ports, zxids=True, where="standalone")


# ------------------------------------------------------------ 3 nodes

def ensemble_run(ens: Ensemble) -> dict[str, tuple[list, dict, dict]]:
    """Every word on the leader and on a follower, after the workload through the follower."""
    leader = ens.leader()
    follower = min(sid for sid in ens.ids if sid != leader)
    work = Workload(ens.address(follower))
    try:
        work.a.sync("/")
        wait_for(lambda: "zk_ephemerals_count\t2" in send(ens.address(leader), b"mntr"), what="the leader's tree")
        out = {}
        for role, sid in (("leader", leader), ("follower", follower)):
            ports = {str(ens.client_ports[s]): f"PORT{'F' if s == follower else 'L' if s == leader else ''}"
                     for s in ens.ids}
            ports.update({f"sid {s}": "L" if s == leader else "F" if s == follower else "O" for s in ens.ids})
            out[role] = (answers(ens.address(sid)), work.labels, ports)
        return out
    finally:
        work.close()


def test_three_node_words_as_apache_zookeeper():
    _require_zookeeper()
    with Ensemble(3, apache=True, settings=SETTINGS) as theirs:
        zk = ensemble_run(theirs)
    with Ensemble(3, settings=SETTINGS) as ours_ens:
        ours = ensemble_run(ours_ens)
    dump("ensemble", zookeeper=zk, zkpy=ours)
    for role in ("leader", "follower"):
        (a, la, pa), (b, lb, pb) = zk[role], ours[role]
        compare(a, b, la, lb, pa, pb, zxids=False, where=role)
