"""Consistency verification: record what kazoo clients saw, check it against ZooKeeper's guarantees;
and a reference model of ZooKeeper's tree for property-based tests.

    history = History()
    rec = Recorder(client, history, "c1")
    ...                                   # rec.get / set / create / sync / lock(...) ...
    report = check(history)
    assert report.ok, report              # anomalies with their minimal sub-histories

    TestMyTree = ReferenceMachine.TestCase    # random ops, model vs zkpy, op by op
"""

import importlib

# Loaded on first use (PEP 562): `zkpy serve` builds the `zkpy verify` parser, which imports
# this package, and a server installed without the test extras has no hypothesis (machine,
# strategies) or kazoo.  `from zkpy.verify import check` works as before.
_EXPORTS = {
    "History": "history", "Op": "history", "RecordedElection": "history", "RecordedLock": "history",
    "Recorder": "history",
    "check": "linearizability", "linearizable": "linearizability", "minimal_failing": "linearizability",
    "Mismatch": "machine", "ReferenceMachine": "machine", "ZxidOrder": "machine",
    "Counter": "models", "Lock": "models", "MODELS": "models", "Model": "models", "Register": "models",
    "Sequence": "models",
    "ReferenceTree": "reference",
    "Anomaly": "report", "Report": "report",
    "Advance": "schedule", "ExpireClient": "schedule", "Fault": "schedule", "Heal": "schedule", "Kill": "schedule",
    "Partition": "schedule", "Pause": "schedule", "Restart": "schedule", "apply_fault": "schedule",
    "SOCKET_MODES": "strategies", "fault_schedules": "strategies", "zkpy_node_operations": "strategies",
    "zkpy_operations": "strategies",
    "PureSystem": "systems", "System": "systems",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> object:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
