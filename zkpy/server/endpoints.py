"""The HTTP endpoints a server's config enables, served by aiohttp on the server's own loop.

- the AdminServer (`admin.enableServer`): `<admin.commandURL>` lists the commands as links,
  `<admin.commandURL>/<name>?k=v` answers admin.run's JSON;
- Prometheus (`metricsProvider.className=...PrometheusMetricsProvider`): `/metrics` (and `/`),
  prometheus-client's exposition of a collector that reads metrics.monitor at each scrape.

A request is handled between two Ready passes, so it sees a consistent state without a lock,
and it is never on the client request path: with neither endpoint enabled nothing here runs.
aiohttp and prometheus-client (the `admin` and `metrics` extras) are imported only then.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from ..logs import get_logger
from . import admin, metrics
from .config import PROMETHEUS_PROVIDER
from .metrics import ZkServer

if TYPE_CHECKING:
    from aiohttp import web

log = get_logger("zkpy.server")


def admin_app(server: ZkServer) -> web.Application:
    """The aiohttp application: `<commandURL>` (the list) and `<commandURL>/<name>`."""
    from aiohttp import web

    base = server.config.admin_command_url.rstrip("/") or "/commands"

    async def listing(request: web.Request) -> web.Response:
        links = "".join(f'<a href="{base}/{n}">{n}</a>\n<br/>\n' for n in admin.primary_names())
        return web.Response(text=links, content_type="text/html")

    async def one(request: web.Request) -> web.Response:
        kwargs = dict(request.query)
        return web.json_response(admin.run(server, request.match_info["name"], kwargs))

    app = web.Application()
    app.router.add_get(base, listing)
    app.router.add_get(base + "/", listing)
    app.router.add_get(base + "/{name}", one)
    return app


class MonitorCollector:
    """A prometheus-client collector that reads `metrics.collect(server)` at each scrape: the
    request path keeps no metric of its own.  As ZooKeeper's PrometheusMetricsProvider: gauges,
    counters (untyped, their own name), summaries (`_count`, `_sum`, and for the ADVANCED ones
    the 0.5/0.9/0.99 quantiles; ZooKeeper's BASIC ones also estimate a median, which zkpy,
    keeping no reservoir for them, leaves out)."""

    def __init__(self, server: ZkServer) -> None:
        self.server = server

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import GaugeMetricFamily, Metric, UnknownMetricFamily

        v = metrics.collect(self.server)
        for key, value in v.gauges.items():
            if key not in metrics.STRINGS:
                yield GaugeMetricFamily(key, key, value=value)
        for key, value in v.counters.items():
            yield UnknownMetricFamily(key, key, value=value)
        for name, (summary, advanced) in v.summaries.items():
            family = Metric(name, name, "summary")
            _summary_samples(family, name, summary, advanced)
            yield family


def _summary_samples(family: Any, name: str, summary: Any, advanced: bool) -> None:
    if advanced:
        quantiles = summary.prometheus_quantiles() if hasattr(summary, "prometheus_quantiles") else [
            (q, 0) for q in (0.5, 0.9, 0.99)]
        for q, value in quantiles:
            family.add_sample(name, {"quantile": str(q)}, value)
    family.add_sample(name + "_count", {}, summary.count)
    family.add_sample(name + "_sum", {}, summary.total)


def metrics_app(server: ZkServer) -> web.Application:
    """`/metrics`, and `/` as ZooKeeper's exporter answers it too."""
    from aiohttp import web
    from prometheus_client import CollectorRegistry
    from prometheus_client.aiohttp import make_aiohttp_handler

    registry = CollectorRegistry(auto_describe=False)
    registry.register(MonitorCollector(server))  # type: ignore[arg-type]
    app = web.Application()
    handler = make_aiohttp_handler(registry)
    app.router.add_get("/metrics", handler)
    app.router.add_get("/", handler)
    return app


class HttpEndpoints:
    """The AdminServer and the Prometheus endpoint a ZkServer's config asks for, on its loop."""

    def __init__(self, server: ZkServer) -> None:
        self.server = server
        self.runners: list[Any] = []
        self.admin_port: int | None = None
        self.metrics_port: int | None = None

    async def start(self) -> None:
        """Listen on each enabled endpoint (port 0: one the kernel picks, read back here)."""
        c = self.server.config
        try:
            if c.admin_enable_server:
                self.admin_port = await self._serve("admin.enableServer=true", "admin", admin_app,
                                                    c.admin_server_address, c.admin_server_port)
                log.info("admin server started", host=c.admin_server_address, admin_port=self.admin_port,
                         command_url=c.admin_command_url)
            if c.metrics_provider_class == PROMETHEUS_PROVIDER:
                self.metrics_port = await self._serve(f"metricsProvider.className={PROMETHEUS_PROVIDER}", "metrics",
                                                      metrics_app, c.metrics_http_host, c.metrics_http_port)
                log.info("metrics server started", host=c.metrics_http_host, metrics_port=self.metrics_port)
        except BaseException:
            await self.stop()  # one endpoint up and the other failed: close the first
            raise

    async def _serve(self, setting: str, extra: str, make_app: Callable[[ZkServer], web.Application],
                     host: str, port: int) -> int:
        try:  # the extras' libraries are imported only when an endpoint is enabled
            from aiohttp import web

            app = make_app(self.server)
        except ImportError as e:
            raise RuntimeError(f"{setting} needs {e.name}: pip install 'zkpy[{extra}]'") from e
        runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await runner.setup()
        self.runners.append(runner)
        site = web.TCPSite(runner, host, port, reuse_address=True)
        await site.start()
        return runner.addresses[-1][1]

    async def stop(self) -> None:
        for runner in reversed(self.runners):
            await runner.cleanup()
        self.runners = []
