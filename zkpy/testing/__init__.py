"""Test helpers for users of zkpy and for our own tests.

- `ZkpyServer`: an in-process server on its own event-loop thread, started in milliseconds.
- `zkpy.testing.external`: servers in separate processes (zkpy and Apache ZooKeeper).
- The pytest plugin (`zkpy.testing.plugin`, registered automatically): fixtures
  `zkpy_server` and `zkpy_client`.
"""

from .inprocess import ZkpyServer

__all__ = ["ZkpyServer"]
