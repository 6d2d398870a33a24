"""A bounded, seeded fuzz of a live server's client port and an ensemble's quorum ports, and
the same oracles shown failing against deliberately broken builds (zkpy/testing/fuzzbroken.py).

`zkpy fuzz --frames 1000000` is the long run (figures in benchmarks/results/*-fuzz.md);
ZKPY_FUZZ_SEED and ZKPY_FUZZ_FRAMES change this one.
"""

from __future__ import annotations

import os

import pytest

from zkpy.testing import fuzz

pytestmark = pytest.mark.timeout(120)

SEED = int(os.environ.get("ZKPY_FUZZ_SEED", "20261201"))
FRAMES = int(os.environ.get("ZKPY_FUZZ_FRAMES", "20000"))


def test_client_port_fuzz_harms_no_one():
    with fuzz.target("client") as ens:
        report = fuzz.run(ens, FRAMES, seed=SEED, port="client")
    assert report.ok, report.text()
    assert report.frames >= FRAMES and report.connections > 100 and report.canary_rounds >= 3, report.text()
    assert {"session", "connect", "raw", "fourletter"} <= set(report.kinds), report.text()


def test_peer_port_fuzz_harms_no_one():
    with fuzz.target("peer") as ens:
        report = fuzz.run(ens, FRAMES // 2, seed=SEED, port="peer")
    assert report.ok, report.text()
    assert report.frames >= FRAMES // 2 and report.canary_rounds >= 3, report.text()
    assert {"impostor", "bad-hello", "raw"} <= set(report.kinds), report.text()


@pytest.mark.parametrize(("broken", "caught_by"), [
    ("raise", "logged"),          # a traceback in the server's log
    ("crash", "died"),            # the process is gone
    ("leak", "RSS"),              # memory keeps growing
])
def test_oracles_catch_a_broken_build(broken, caught_by):
    with fuzz.target("client", broken=broken) as ens:
        report = fuzz.run(ens, 30_000, seed=SEED, port="client")
    assert not report.ok, report.text()
    assert any(caught_by in f for f in report.failures), report.text()


def test_a_failure_is_saved_and_replays(tmp_path):
    """The cases in flight when a broken build died are saved as bytes; sent again one by one
    they kill a fresh broken server, and leave a good one unharmed."""
    with fuzz.target("client", broken="crash") as ens:
        report = fuzz.run(ens, 30_000, seed=SEED, port="client", save_dir=str(tmp_path / "failure"))
    assert report.saved and os.listdir(report.saved), report.text()
    with fuzz.target("client", broken="crash") as ens:
        again = fuzz.replay(ens, report.saved)
    assert any("died" in f or "not running" in f for f in again.failures), again.text()
    with fuzz.target("client") as ens:
        good = fuzz.replay(ens, report.saved)
    assert good.ok, good.text()
