"""Prometheus metrics (`metricsProvider.className=...PrometheusMetricsProvider`), read by
prometheus-client's own parser over real HTTP while kazoo runs a workload."""

from __future__ import annotations

import os
import re
import time
import urllib.request

import pytest
from kazoo.client import KazooClient
from prometheus_client.parser import text_string_to_metric_families

from zkpy.server.config import PROMETHEUS_PROVIDER, ConfigError, load
from zkpy.testing import ZkpyServer
from zkpy.testing.ensemble import Ensemble

# ZooKeeper's names and Prometheus types for what every zkpy server reports.
CORE = {"znode_count": "gauge", "watch_count": "gauge", "ephemerals_count": "gauge", "global_sessions": "gauge",
        "num_alive_connections": "gauge", "packets_received": "gauge", "packets_sent": "gauge",
        "outstanding_requests": "gauge", "avg_latency": "gauge", "min_latency": "gauge", "max_latency": "gauge",
        "approximate_data_size": "gauge", "uptime": "gauge", "open_file_descriptor_count": "gauge",
        "max_client_response_size": "gauge", "min_client_response_size": "gauge",
        "connection_request_count": "unknown", "bytes_received_count": "unknown", "response_bytes": "unknown",
        "watch_bytes": "unknown", "outstanding_changes_queued": "unknown", "prep_processor_request_queued": "unknown",
        "sync_processor_request_queued": "unknown", "commit_count": "unknown", "proposal_count": "unknown",
        "sync_processor_batch_size": "summary", "fsynctime": "summary", "updatelatency": "summary",
        "readlatency": "summary", "propagation_latency": "summary", "sync_processor_queue_and_flush_time_ms": "summary",
        "node_changed_watch_count": "summary", "election_time": "summary", "dbinittime": "summary"}
# ZooKeeper's DetailLevel.ADVANCED summaries: quantiles 0.5, 0.9, 0.99 besides _count and _sum.
ADVANCED = ("updatelatency", "readlatency", "propagation_latency", "sync_processor_queue_and_flush_time_ms")


def scrape(port: int, path: str = "/metrics") -> dict[str, float]:
    """Every sample by name (a labelled one as name{label=value,...}), after checking that each
    core family has its type and each ADVANCED summary its quantiles."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as r:
        assert r.status == 200 and r.headers.get_content_type() == "text/plain"
        text = r.read().decode()
    families = {f.name: f for f in text_string_to_metric_families(text)}
    types = {name: families[name].type for name in CORE if name in families}
    assert types == CORE
    for name in ADVANCED:
        assert sorted(s.labels["quantile"] for s in families[name].samples if "quantile" in s.labels) == [
            "0.5", "0.9", "0.99"]
    samples = {}
    for f in families.values():
        for s in f.samples:
            labels = ",".join(f"{k}={v}" for k, v in sorted(s.labels.items()))
            samples[f"{s.name}{{{labels}}}" if labels else s.name] = s.value
    return samples


def wait_for(condition, timeout: float = 20.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


@pytest.fixture
def metrics_server(tmp_path):
    with ZkpyServer(tick_time=200, data_dir=str(tmp_path), metrics_provider_class=PROMETHEUS_PROVIDER,
                    metrics_http_port=0) as s:
        yield s


def test_metrics_change_as_the_workload_runs(metrics_server):
    port = metrics_server.server.http.metrics_port
    before = scrape(port)
    assert before["znode_count"] == 5 and before["global_sessions"] == 0 and before["num_alive_connections"] == 0
    clients = [KazooClient(hosts=metrics_server.connect_string, timeout=10) for _ in range(3)]
    try:
        for c in clients:
            c.start(timeout=10)
        for i in range(20):
            clients[i % 3].create(f"/m{i}", b"x" * 10)
        clients[0].create("/eph", ephemeral=True)
        clients[1].get("/m1", watch=lambda e: None)
        clients[0].set("/m1", b"fires")
        during = scrape(port)
        assert during["znode_count"] == 5 + 21
        assert (during["global_sessions"], during["num_alive_connections"]) == (3, 3)
        assert (during["ephemerals_count"], during["watch_count"]) == (1, 0)  # the set fired the watch
        assert during["packets_received"] >= before["packets_received"] + 21
        assert during["packets_sent"] >= before["packets_sent"] + 21
        assert during["connection_request_count"] == before["connection_request_count"] + 3
        # 3 sessions and 21 creates went through the log, in at least one batch.
        assert during["sync_processor_batch_size_sum"] >= before["sync_processor_batch_size_sum"] + 24
        assert during["sync_processor_batch_size_count"] > before["sync_processor_batch_size_count"]
        assert during["approximate_data_size"] > before["approximate_data_size"]
        # ZooKeeper's ServerMetrics: 3 sessions, 21 creates and a set through Prep, the log and Final.
        assert during["prep_processor_request_queued"] >= before["prep_processor_request_queued"] + 25
        assert during["sync_processor_request_queued"] >= before["sync_processor_request_queued"] + 25
        assert during["outstanding_changes_queued"] > before["outstanding_changes_queued"]
        assert during["updatelatency_count"] >= before["updatelatency_count"] + 25
        assert during["readlatency_count"] > before["readlatency_count"]
        assert during["propagation_latency_count"] >= before["propagation_latency_count"] + 25
        assert during["fsynctime_count"] > before["fsynctime_count"]  # forceSync: one per batch
        assert during["sync_processor_queue_and_flush_time_ms_count"] >= before[
            "sync_processor_queue_and_flush_time_ms_count"] + 25
        assert during["bytes_received_count"] > before["bytes_received_count"]
        assert during["response_bytes"] > before["response_bytes"]
        assert during["watch_bytes"] > before["watch_bytes"] == 0  # the set fired the watch on /m1
        assert (during["node_changed_watch_count_count"], during["node_changed_watch_count_sum"]) == (1, 1)
        assert during["max_client_response_size"] >= during["min_client_response_size"] > 0
        assert during["commit_count"] == during["proposal_count"] == 0  # standalone: no Leader
        assert during["dbinittime_count"] == 1 and during["election_time_count"] == 0
    finally:
        for c in clients:
            c.stop()
            c.close()
    after = wait_for(lambda: (m := scrape(port))["global_sessions"] == 0 and m, what="sessions closed")
    assert (after["ephemerals_count"], after["num_alive_connections"], after["znode_count"]) == (0, 0, 5 + 20)
    assert after["packets_received"] >= during["packets_received"]  # counted since start, not per connection
    assert scrape(port, "/")["znode_count"] == 5 + 20  # "/" answers too, as ZooKeeper's exporter


def test_no_endpoint_without_the_provider():
    with ZkpyServer() as s:
        assert s.server.http.metrics_port is None


def test_provider_settings(tmp_path):
    cfg = tmp_path / "zoo.cfg"
    cfg.write_text(f"metricsProvider.className={PROMETHEUS_PROVIDER}\nmetricsProvider.httpPort=7123\n"
                   "metricsProvider.httpHost=127.0.0.1\n")
    c = load(str(cfg))
    assert (c.metrics_provider_class, c.metrics_http_port, c.metrics_http_host) == (PROMETHEUS_PROVIDER, 7123,
                                                                                    "127.0.0.1")
    cfg.write_text("metricsProvider.className=com.example.Nope\n")
    with pytest.raises(ConfigError, match="com.example.Nope"):
        load(str(cfg))


def test_three_node_ensemble_metrics():
    settings = {"metricsProvider.className": PROMETHEUS_PROVIDER, "metricsProvider.httpPort": "0"}
    with Ensemble(3, settings=settings) as ens:
        def metrics_ports():
            ports = {}
            for sid in ens.ids:
                with open(os.path.join(ens.base, f"server{sid}", "server.log")) as f:
                    m = re.search(r"metrics server started\s.*\bmetrics_port=(\d+)", f.read())
                ports[sid] = int(m.group(1)) if m else None
            return ports if all(ports.values()) else None
        ports = wait_for(metrics_ports, what="three metrics ports")
        leader = ens.leader()
        c = KazooClient(hosts=ens.address(leader), timeout=10)
        c.start(timeout=10)
        try:
            for i in range(10):
                c.create(f"/n{i}")
            for sid, port in ports.items():
                m = wait_for(lambda port=port: (s := scrape(port))["znode_count"] == 5 + 10 and s, what=f"member {sid}'s tree")
                assert m["quorum_size"] == 3
                assert m["election_time_count"] == 1 and m["looking_count"] == 1
                assert m["unavailable_time_count"] == 1
                if sid == leader:
                    assert (m["learners"], m["synced_followers"]) == (2, 2)
                    assert m["num_alive_connections"] == 1
                    assert m["proposal_count"] >= 11 and m["commit_count"] >= 11  # a session and 10 creates
                    assert m["quorum_ack_latency_count"] >= 11 and m["diff_count"] + m["snap_count"] == 2
                    assert m["leader_unavailable_time_count"] == 1 and m["follower_sync_time_count"] == 0
                    assert m["max_proposal_size"] >= m["min_proposal_size"] > 0
                else:
                    assert "learners" not in m
                    assert m["follower_sync_time_count"] == 1
                    assert m["learner_proposal_received_count"] >= 11 and m["learner_commit_received_count"] >= 1
                    assert m["commit_propagation_latency_count"] >= 11 and m["proposal_latency_count"] >= 11
        finally:
            c.stop()
            c.close()
