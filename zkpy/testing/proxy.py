"""A loopback TCP proxy whose links a test can cut and heal: network partitions without root.

Every link forwards one listening port on 127.0.0.1 to one target.  Cutting a link freezes it
as a real partition does: bytes stop flowing both ways but nothing is lost or reset, so the
TCP streams stay intact and resume when the link heals (late, as retransmission delivers
them).  Connections opened while a link is cut wait, unconnected, for the heal; a peer that
needs to notice the partition must do so by its own timeouts, as on a real network.

    proxy = Proxy()
    port = proxy.link("a->b", "127.0.0.1", b_port)   # a dials `port` instead of b_port
    proxy.cut(["a->b"]); ...; proxy.heal()
    proxy.close()

The proxy runs its own event loop on a daemon thread, so a synchronous test can drive it.
"""

from __future__ import annotations

import asyncio
import socket
import struct
import threading
from typing import Iterable

from .external import free_port

CHUNK = 64 * 1024


class _Link:
    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.open = asyncio.Event()
        self.open.set()
        self.writers: set[asyncio.StreamWriter] = set()
        self.closing = False


class Proxy:
    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.links: dict[str, _Link] = {}
        self._servers: list[asyncio.AbstractServer] = []
        self._thread = threading.Thread(target=self.loop.run_forever, name="zkpy-proxy", daemon=True)
        self._thread.start()

    def _call(self, coro_or_fn, *args):
        if asyncio.iscoroutinefunction(coro_or_fn):
            return asyncio.run_coroutine_threadsafe(coro_or_fn(*args), self.loop).result(10)
        done = threading.Event()
        out: list = []

        def run() -> None:
            out.append(coro_or_fn(*args))
            done.set()

        self.loop.call_soon_threadsafe(run)
        if not done.wait(10):
            raise TimeoutError("proxy loop does not answer")
        return out[0]

    def link(self, name: str, host: str, port: int) -> int:
        """Start forwarding a new free loopback port to (host, port); returns the port."""
        return self._call(self._link, name, host, port)

    async def _link(self, name: str, host: str, port: int) -> int:
        link = _Link((host, port))
        self.links[name] = link
        for _ in range(20):
            listen = free_port()
            try:
                server = await asyncio.start_server(lambda r, w: self._accept(link, r, w), "127.0.0.1", listen)
            except OSError:
                continue  # taken between free_port() and bind
            self._servers.append(server)
            return listen
        raise OSError("no free port for a proxy link")

    async def _accept(self, link: _Link, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        link.writers.add(writer)
        up_writer = None
        try:
            await link.open.wait()
            if link.closing:
                return
            try:
                up_reader, up_writer = await asyncio.open_connection(*link.target)
            except OSError:
                # Nobody listens there: reset the client's connection, the nearest we can
                # come to the "connection refused" it would have had without the proxy.
                sock = writer.get_extra_info("socket")
                if sock is not None:
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                return
            link.writers.add(up_writer)
            await asyncio.gather(self._pump(link, reader, up_writer), self._pump(link, up_reader, writer))
        except OSError:
            pass
        finally:
            for w in (writer, up_writer):
                if w is not None:
                    link.writers.discard(w)
                    w.close()

    @staticmethod
    async def _pump(link: _Link, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                data = await reader.read(CHUNK)
                if not data:
                    break
                await link.open.wait()  # cut: hold the bytes (and stop reading) until healed
                if link.closing:
                    break
                writer.write(data)
                await writer.drain()
        except OSError:
            pass
        finally:
            writer.close()

    def cut(self, names: Iterable[str]) -> None:
        names = list(names)
        self._call(lambda: [self.links[n].open.clear() for n in names])

    def heal(self, names: Iterable[str] | None = None) -> None:
        names = list(self.links) if names is None else list(names)
        self._call(lambda: [self.links[n].open.set() for n in names])

    def cut_links(self) -> set[str]:
        return self._call(lambda: {n for n, l in self.links.items() if not l.open.is_set()})

    def close(self) -> None:
        async def shutdown() -> None:
            for link in self.links.values():
                link.closing = True
                link.open.set()  # wake every waiter: it sees `closing` and leaves
            for s in self._servers:
                s.close()
            for link in self.links.values():
                for w in list(link.writers):
                    w.close()
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            if tasks:
                await asyncio.wait(tasks, timeout=2)

        try:
            self._call(shutdown)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(5)
