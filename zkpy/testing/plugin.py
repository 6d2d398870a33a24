"""pytest plugin (entry point `zkpy`): fixtures for tests that need a ZooKeeper server.

    def test_lock(zkpy_client):
        zkpy_client.create("/x", b"1")

    @pytest.mark.zkpy(size=5, tick_time=100, settings={"maxClientCnxns": "100"}, inprocess=True)
    def test_five(zkpy_ensemble): ...

Fixtures, fresh per test:
- `zkpy_server`: an in-process server (milliseconds to start); `zkpy_client`: a started
  kazoo client connected to it.
- `zkpy_ensemble`: an ensemble of `zkpy serve` processes (about 0.3 s to start) whose peer
  links go through a proxy, for `kill`/`start_server`, `pause`/`resume`, `isolate`/`heal`;
  `zkpy_inprocess_ensemble`: the same with its members in this process (`kill` is a stop).
Shared, returned to an empty tree with no sessions (`reset()`) before each test that uses them:
`zkpy_server_module`, `zkpy_server_session`, `zkpy_ensemble_module`, `zkpy_ensemble_session`.

Options: the `zkpy` marker (on a test, class or module; a module's `pytestmark` for the
module-scoped fixtures; session-scoped ones take only the defaults) takes `size`,
`tick_time`, `settings` (zoo.cfg keys), `proxied`, `inprocess` (ensembles in this process),
`apache` (Apache ZooKeeper 3.8 instead of zkpy, standalone or ensemble), and for in-process
servers any Config field (`extended_types=True`, ...).  Defaults come from ini options
`zkpy_size`, `zkpy_tick_time`, `zkpy_inprocess`, `zkpy_apache` and the command line
(`--zkpy-apache` runs the same tests against Apache ZooKeeper; `--zkpy-inprocess`).

When a test that used these fixtures fails, its report gets the sections "zkpy wire trace"
(the last `zkpy_trace_lines` requests, replies and events of in-process servers) and "zkpy
server logs" (each member's last `zkpy_log_lines` log lines); a process ensemble's temp dir
(logs and data) is then kept and named there; `--zkpy-keep-logs` keeps it always.
"""

from __future__ import annotations

import os
import tempfile
from typing import Any, Iterator

import pytest

from ..server.config import Config, load
from .ensemble import Ensemble
from .external import ApacheZooKeeper, _ServerProcess, apache_zookeeper_available
from .inprocess import ZkpyServer
from .inprocess_ensemble import InProcessEnsemble
from .reset import reset_through_client
from .trace import format_trace

_ENSEMBLE_KEYS = ("size", "proxied", "inprocess", "observers")


# ------------------------------------------------------------ options


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("zkpy", "zkpy fixtures")
    group.addoption("--zkpy-apache", action="store_true", default=None,
                    help="run the zkpy fixtures' tests against Apache ZooKeeper 3.8 instead of zkpy")
    group.addoption("--zkpy-inprocess", action="store_true", default=None,
                    help="zkpy_ensemble runs its members in this process")
    group.addoption("--zkpy-keep-logs", action="store_true", default=None,
                    help="keep process ensembles' temp dirs (logs, data) even when tests pass")
    parser.addini("zkpy_apache", "zkpy fixtures run Apache ZooKeeper (as --zkpy-apache)", type="bool", default=False)
    parser.addini("zkpy_inprocess", "zkpy_ensemble runs in this process", type="bool", default=False)
    parser.addini("zkpy_keep_logs", "as --zkpy-keep-logs", type="bool", default=False)
    parser.addini("zkpy_size", "members of zkpy_ensemble", default="3")
    parser.addini("zkpy_tick_time", "tickTime (ms) of the fixtures' servers (default: 200 for ensembles, "
                  "3000 for a server)", default="")
    parser.addini("zkpy_trace_lines", "wire trace entries in a failed test's report", default="60")
    parser.addini("zkpy_log_lines", "log lines per member in a failed test's report", default="20")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "zkpy(size=3, tick_time=None, settings=None, proxied=True, inprocess=False, "
                                       "apache=False, **server_options): options of the zkpy fixtures")


def _flag(config: pytest.Config, name: str) -> bool:
    value = config.getoption(f"--{name.replace('_', '-')}")
    return bool(config.getini(name)) if value is None else value


def _options(request: pytest.FixtureRequest) -> dict[str, Any]:
    """The ini/command-line defaults, overridden by the closest `zkpy` marker."""
    config = request.config
    opts: dict[str, Any] = {"size": int(config.getini("zkpy_size")), "apache": _flag(config, "zkpy_apache"),
                            "inprocess": _flag(config, "zkpy_inprocess"), "proxied": True, "settings": {}}
    if config.getini("zkpy_tick_time"):
        opts["tick_time"] = int(config.getini("zkpy_tick_time"))
    marker = request.node.get_closest_marker("zkpy")
    if marker is not None:
        if marker.args:
            raise pytest.UsageError("@pytest.mark.zkpy takes keyword arguments only")
        opts.update(marker.kwargs)
    return opts


# ------------------------------------------------------------ building servers


def _server_config(tick_time: int | None, settings: dict[str, Any]) -> Config:
    """A loopback, free-port server's Config from zoo.cfg settings (as ensembles take them)."""
    lines = ["clientPort=0", "clientPortAddress=127.0.0.1", "4lw.commands.whitelist=*"]
    if tick_time is not None:
        lines.append(f"tickTime={tick_time}")
    lines += [f"{k}={v}" for k, v in settings.items()]
    fd, path = tempfile.mkstemp(prefix="zkpy-fixture-", suffix=".cfg")
    try:
        with os.fdopen(fd, "w") as f:
            f.write("\n".join(lines) + "\n")
        return load(path)
    finally:
        os.unlink(path)


def _need_apache() -> None:
    if not apache_zookeeper_available():
        pytest.fail("Apache ZooKeeper was asked for (apache=True / --zkpy-apache) but is not installed",
                    pytrace=False)


def _start_server(opts: dict[str, Any]) -> ZkpyServer | ApacheZooKeeper:
    if opts.get("apache"):
        _need_apache()
        return ApacheZooKeeper(tick_time=opts.get("tick_time", 2000), config=opts["settings"]).start()
    extra = {k: v for k, v in opts.items()
             if k not in _ENSEMBLE_KEYS + ("apache", "tick_time", "settings")}
    return ZkpyServer(config=_server_config(opts.get("tick_time"), opts["settings"]), **extra).start()


def _start_ensemble(opts: dict[str, Any], keep_logs: bool) -> Ensemble:
    kwargs = {k: opts[k] for k in ("tick_time", "observers", "proxied", "apache") if k in opts}
    kwargs["settings"] = {k: str(v) for k, v in opts["settings"].items()}
    if opts.get("apache"):
        _need_apache()
    cls = InProcessEnsemble if opts.get("inprocess") and not opts.get("apache") else Ensemble
    ensemble = cls(opts["size"], **kwargs)
    ensemble.keep_dir = keep_logs and cls is Ensemble
    return ensemble.start()


def _stop(backend: Any) -> None:
    if isinstance(backend, _ServerProcess):
        backend.stop(cleanup=not getattr(backend, "keep_dir", False))
    else:
        backend.stop()


def _reset(backend: Any) -> None:
    if isinstance(backend, _ServerProcess):
        reset_through_client(backend.connect_string)
    else:
        backend.reset()


# ------------------------------------------------------------ fixtures


def _server_fixture(request: pytest.FixtureRequest) -> Iterator[Any]:
    server = _start_server(_options(request))
    try:
        yield server
    finally:
        _stop(server)


def _ensemble_fixture(request: pytest.FixtureRequest, **overrides: Any) -> Iterator[Any]:
    ensemble = _start_ensemble({**_options(request), **overrides}, _flag(request.config, "zkpy_keep_logs"))
    try:
        yield ensemble
    finally:
        _stop(ensemble)


@pytest.fixture
def zkpy_server(request: pytest.FixtureRequest) -> Iterator[ZkpyServer]:
    yield from _server_fixture(request)


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
def zkpy_ensemble(request: pytest.FixtureRequest) -> Iterator[Ensemble]:
    yield from _ensemble_fixture(request)


@pytest.fixture
def zkpy_inprocess_ensemble(request: pytest.FixtureRequest) -> Iterator[Ensemble]:
    yield from _ensemble_fixture(request, inprocess=True)


@pytest.fixture(scope="module")
def _zkpy_server_module(request: pytest.FixtureRequest) -> Iterator[Any]:
    yield from _server_fixture(request)


@pytest.fixture(scope="session")
def _zkpy_server_session(request: pytest.FixtureRequest) -> Iterator[Any]:
    yield from _server_fixture(request)


@pytest.fixture(scope="module")
def _zkpy_ensemble_module(request: pytest.FixtureRequest) -> Iterator[Any]:
    yield from _ensemble_fixture(request)


@pytest.fixture(scope="session")
def _zkpy_ensemble_session(request: pytest.FixtureRequest) -> Iterator[Any]:
    yield from _ensemble_fixture(request)


@pytest.fixture
def zkpy_server_module(_zkpy_server_module: Any) -> Any:
    """One server per test module, reset before each test."""
    _reset(_zkpy_server_module)
    return _zkpy_server_module


@pytest.fixture
def zkpy_server_session(_zkpy_server_session: Any) -> Any:
    """One server per test session, reset before each test."""
    _reset(_zkpy_server_session)
    return _zkpy_server_session


@pytest.fixture
def zkpy_ensemble_module(_zkpy_ensemble_module: Ensemble) -> Ensemble:
    """One ensemble per test module, reset before each test (a test that kills members should
    bring them back, or use `zkpy_ensemble`)."""
    _reset(_zkpy_ensemble_module)
    return _zkpy_ensemble_module


@pytest.fixture
def zkpy_ensemble_session(_zkpy_ensemble_session: Ensemble) -> Ensemble:
    """One ensemble per test session, reset before each test."""
    _reset(_zkpy_ensemble_session)
    return _zkpy_ensemble_session


# ------------------------------------------------------------ failure reports


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()
    if report.when != "call" or not report.failed:
        return
    backends = _backends(item)
    if not backends:
        return
    config = item.config
    traces, logs = [], []
    for name, backend in backends:
        trace = backend.trace() if hasattr(backend, "trace") else None
        if trace is not None:
            traces.append(f"--- {name}:\n" + (format_trace(trace, last=int(config.getini("zkpy_trace_lines")))
                                              or "(no client traffic)"))
        logs.append(f"--- {name}:\n" + _log_tail(backend, int(config.getini("zkpy_log_lines"))))
    if traces:
        report.sections.append(("zkpy wire trace", "\n".join(traces)))
    report.sections.append(("zkpy server logs", "\n".join(logs)))


def _backends(item: pytest.Item) -> list[tuple[str, Any]]:
    """The servers and ensembles among the test's fixtures (its own and those they use)."""
    seen, out = set(), []
    for name, value in getattr(item, "funcargs", {}).items():
        if isinstance(value, (ZkpyServer, Ensemble, _ServerProcess)) and id(value) not in seen:
            seen.add(id(value))
            out.append((name, value))
    return out


def _log_tail(backend: Any, lines: int) -> str:
    if isinstance(backend, ZkpyServer):
        return "\n".join(list(backend.log_lines)[-lines:])
    if isinstance(backend, InProcessEnsemble):
        return backend.log_tails(lines)
    if isinstance(backend, Ensemble):
        backend.keep_dir = True
        return backend.log_tails(lines) + f"\n(logs and data kept in {backend.base})"
    backend.keep_dir = True  # a server process (Apache ZooKeeper)
    return backend.log_tail(lines) + f"\n(logs and data kept in {backend.workdir})"
