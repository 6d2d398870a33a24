"""A lean pipelined load generator speaking the wire protocol directly.

The official Java client costs more CPU per request than either server on a 2-core
machine, so it measures itself; this generator pre-encodes its requests and parses only
reply headers, keeping `window` requests in flight on each of `clients` connections.
Prints one JSON line: ops/s and latency percentiles.

    python benchmarks/loadgen.py HOST:PORT[,HOST:PORT...] get|set|create|mixed CLIENTS WINDOW WARMUP SECONDS NODES SIZE

With several servers (an ensemble), connection i goes to server i mod their number; the
znodes are created through connection 0, then every connection issues a `sync` and waits
for it, so that each server has the znodes before the load starts.

    python benchmarks/loadgen.py HOST:PORT fill N WINDOW SIZE

writes exactly N persistent creates (/fill, then /fill/c1 .. /fill/c<N-1>, SIZE bytes each)
on one connection with WINDOW in flight, and prints {"op": "fill", "ops": N, "errors": ...}.
"""

from __future__ import annotations

import json
import selectors
import socket
import struct
import sys
import time

_HDR = struct.Struct(">iiqi")  # length, xid, zxid, err


def _connect(host: str, port: int) -> socket.socket:
    s = socket.create_connection((host, port), timeout=30)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    body = struct.pack(">iqiq", 0, 0, 30000, 0) + struct.pack(">i", 16) + b"\0" * 16 + b"\0"
    s.sendall(struct.pack(">i", len(body)) + body)
    need = 4
    buf = b""
    while len(buf) < need:
        chunk = s.recv(4096)
        if not chunk:
            raise SystemExit("loadgen: connection refused by the server")
        buf += chunk
        if len(buf) >= 4:
            need = 4 + struct.unpack(">i", buf[:4])[0]
    return s


def _string(s: str) -> bytes:
    b = s.encode()
    return struct.pack(">i", len(b)) + b


def _request(xid: int, op: str, path: str, data: bytes, seq: int) -> bytes:
    if op == "get":
        body = struct.pack(">ii", xid, 4) + _string(path) + b"\0"
    elif op == "set":
        body = struct.pack(">ii", xid, 5) + _string(path) + struct.pack(">i", len(data)) + data + struct.pack(">i", -1)
    else:  # create
        acl = struct.pack(">ii", 1, 31) + _string("world") + _string("anyone")
        body = struct.pack(">ii", xid, 1) + _string(f"/bench/c{seq}") + struct.pack(">i", len(data)) + data + acl + struct.pack(">i", 0)
    return struct.pack(">i", len(body)) + body


def _read_replies(s: socket.socket, count: int, what: str) -> None:
    """Read `count` whole reply frames from a blocking socket (their contents are not checked)."""
    got, buf = 0, b""
    s.settimeout(60)
    while got < count:
        chunk = s.recv(1 << 20)
        if not chunk:
            raise SystemExit(f"loadgen: server closed the connection during {what}")
        buf += chunk
        while len(buf) >= 4 and len(buf) >= 4 + struct.unpack_from(">i", buf)[0]:
            buf = buf[4 + struct.unpack_from(">i", buf)[0]:]
            got += 1


def run(connect: str, op: str, clients: int, window: int, warmup: float, seconds: float, nodes: int, size: int) -> dict:
    servers = [hp.rsplit(":", 1) for hp in connect.split(",") if hp]
    data = b"x" * size
    socks = [_connect(servers[i % len(servers)][0], int(servers[i % len(servers)][1])) for i in range(clients)]
    setup = socks[0]
    # /bench and its nodes (errors such as NODEEXISTS are fine)
    acl = struct.pack(">ii", 1, 31) + _string("world") + _string("anyone")
    reqs = []
    # distinct xids: a zkpy ensemble matches a reply to its request by (session, xid), and stalls the
    # connection when two requests in flight share one (ZooKeeper answers them in order)
    for xid, (path, payload) in enumerate([("/bench", b"")] + [(f"/bench/n{i}", data) for i in range(nodes)], 1):
        body = struct.pack(">ii", xid, 1) + _string(path) + struct.pack(">i", len(payload)) + payload + acl + struct.pack(">i", 0)
        reqs.append(struct.pack(">i", len(body)) + body)
    setup.sendall(b"".join(reqs))
    _read_replies(setup, len(reqs), "setup")
    if len(servers) > 1:  # each server catches up with the creates before its clients read them
        body = struct.pack(">ii", 3, 9) + _string("/bench")
        for s in socks[1:]:
            s.sendall(struct.pack(">i", len(body)) + body)
        for s in socks[1:]:
            _read_replies(s, 1, "sync")
    # pre-encoded requests, cycling over the nodes; xid = slot index
    sel = selectors.DefaultSelector()
    state = []
    seq = 0
    for ci, s in enumerate(socks):
        s.setblocking(False)
        sel.register(s, selectors.EVENT_READ, ci)
        state.append({"buf": bytearray(), "sent": [0.0] * window, "k": ci})
    latencies: list[float] = []
    count = 0
    start = time.perf_counter()
    warm_end = start + warmup
    end = warm_end + seconds

    def send(ci: int, slot: int) -> None:
        nonlocal seq
        st = state[ci]
        st["k"] += 1
        o = op
        if op == "mixed":
            o = "set" if st["k"] % 10 == 0 else "get"
        seq += 1
        frame = _request(slot, o, f"/bench/n{st['k'] % nodes}", data, seq)
        st["sent"][slot] = time.perf_counter()
        socks[ci].sendall(frame)

    for ci in range(clients):
        for slot in range(window):
            send(ci, slot)
    now = time.perf_counter()
    errors = 0
    while now < end:
        for key, _ in sel.select(0.5):
            ci = key.data
            st = state[ci]
            try:
                chunk = socks[ci].recv(1 << 20)
            except BlockingIOError:
                continue
            if not chunk:
                raise SystemExit(f"loadgen: server closed connection {ci}")
            b = st["buf"]
            b += chunk
            pos = 0
            now = time.perf_counter()
            out = []
            while len(b) - pos >= 20:
                n, xid, _zxid, err = _HDR.unpack_from(b, pos)
                if len(b) - pos - 4 < n:
                    break
                pos += 4 + n
                if xid < 0:
                    continue
                if err:
                    errors += 1
                if now >= warm_end and now <= end:
                    count += 1
                    latencies.append(now - st["sent"][xid])
                if now < end:
                    st["k"] += 1
                    o = op
                    if op == "mixed":
                        o = "set" if st["k"] % 10 == 0 else "get"
                    seq += 1
                    out.append(_request(xid, o, f"/bench/n{st['k'] % nodes}", data, seq))
                    st["sent"][xid] = now
            del b[:pos]
            if out:
                socks[ci].sendall(b"".join(out))
        now = time.perf_counter()
    latencies.sort()
    n = len(latencies)

    def pct(p: float) -> float:
        return latencies[min(n - 1, int(n * p))] * 1000 if n else 0.0

    for s in socks:
        s.close()
    return {"op": op, "clients": clients, "window": window, "ops": count, "seconds": seconds,
            "ops_per_sec": count / seconds, "p50_ms": pct(0.5), "p99_ms": pct(0.99), "p999_ms": pct(0.999),
            "errors": errors}


def fill(connect: str, count: int, window: int, size: int) -> dict:
    """Exactly `count` creates (each one txn), pipelined `window` deep on one connection."""
    host, port = connect.split(",")[0].rsplit(":", 1)
    s = _connect(host, int(port))
    s.settimeout(120)
    data = b"x" * size
    acl = struct.pack(">ii", 1, 31) + _string("world") + _string("anyone")

    def create(i: int) -> bytes:
        path = "/fill" if i == 0 else f"/fill/c{i}"
        body = struct.pack(">ii", i + 1, 1) + _string(path) + struct.pack(">i", len(data)) + data + acl + struct.pack(">i", 0)
        return struct.pack(">i", len(body)) + body

    start = time.perf_counter()
    s.sendall(create(0))  # the parent first, so that no child can race ahead of it
    sent, done, errors = 1, 0, 0
    buf = bytearray()
    while done < count:
        if done >= 1 and sent < count and sent - done <= window // 2:  # top the window up
            out = []
            while sent < count and sent - done < window:
                out.append(create(sent))
                sent += 1
            s.sendall(b"".join(out))
        chunk = s.recv(1 << 20)
        if not chunk:
            raise SystemExit(f"loadgen: server closed the connection after {done} of {count} creates")
        buf += chunk
        pos = 0
        while len(buf) - pos >= 20:
            n, xid, _zxid, err = _HDR.unpack_from(buf, pos)
            if len(buf) - pos - 4 < n:
                break
            pos += 4 + n
            if xid > 0:
                done += 1
                errors += err != 0
        del buf[:pos]
    seconds = time.perf_counter() - start
    s.close()
    return {"op": "fill", "ops": done, "seconds": seconds, "ops_per_sec": done / seconds, "errors": errors}


if __name__ == "__main__":
    a = sys.argv[1:]
    if len(a) > 1 and a[1] == "fill":
        print(json.dumps(fill(a[0], int(a[2]), int(a[3]), int(a[4]))))
        sys.exit(0)
    print(json.dumps(run(a[0], a[1], int(a[2]), int(a[3]), float(a[4]), float(a[5]), int(a[6]), int(a[7]))))
