"""ZooKeeper's client wire protocol: constants, jute records and framing (sans-IO)."""
