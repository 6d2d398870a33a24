"""zkpy: a ZooKeeper-compatible coordination server."""

__version__ = "0.1.0"
