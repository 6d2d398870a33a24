"""Test helpers for users of zkpy and for our own tests.

- `ZkpyServer`: an in-process server on its own event-loop thread, started in milliseconds.
- `Ensemble`: a local ensemble of `zkpy serve` (or Apache ZooKeeper) processes, with kill,
  pause, and network partitions through a loopback proxy (`zkpy.testing.proxy`).
- `InProcessEnsemble`: the same ensemble API with the members in this process (faster to start).
- `VirtualClock` (`zkpy.testing.clock`): time that moves only in `advance(seconds)`, for
  `ZkpyServer(clock=...)` and `InProcessEnsemble(clock=...)` (or `clock="virtual"`).
- `zkpy.testing.external`: single servers in separate processes (zkpy and Apache ZooKeeper).
- The pytest plugin (`zkpy.testing.plugin`, registered automatically): fixtures
  `zkpy_server`, `zkpy_client` and `zkpy_ensemble`.
"""

from .clock import VirtualClock
from .ensemble import Ensemble
from .inprocess import ZkpyServer
from .inprocess_ensemble import InProcessEnsemble

__all__ = ["Ensemble", "InProcessEnsemble", "VirtualClock", "ZkpyServer"]
