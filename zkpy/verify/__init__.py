"""Consistency verification: record what kazoo clients saw, check it against ZooKeeper's guarantees;
and a reference model of ZooKeeper's tree for property-based tests.

    history = History()
    rec = Recorder(client, history, "c1")
    ...                                   # rec.get / set / create / sync / lock(...) ...
    report = check(history)
    assert report.ok, report              # anomalies with their minimal sub-histories

    TestMyTree = ReferenceMachine.TestCase    # random ops, model vs zkpy, op by op
"""

from .history import History, Op, RecordedElection, RecordedLock, Recorder
from .linearizability import check, linearizable, minimal_failing
from .machine import Mismatch, ReferenceMachine, ZxidOrder
from .models import MODELS, Counter, Lock, Model, Register, Sequence
from .reference import ReferenceTree
from .report import Anomaly, Report
from .schedule import Advance, ExpireClient, Fault, Heal, Kill, Partition, Pause, Restart, apply_fault
from .strategies import SOCKET_MODES, fault_schedules, zkpy_node_operations, zkpy_operations
from .systems import PureSystem, System

__all__ = ["MODELS", "SOCKET_MODES", "Advance", "Anomaly", "Counter", "ExpireClient", "Fault", "Heal", "History",
           "Kill", "Lock", "Mismatch", "Model", "Op", "Partition", "Pause", "PureSystem", "RecordedElection",
           "RecordedLock", "Recorder", "ReferenceMachine", "ReferenceTree", "Register", "Report", "Restart",
           "Sequence", "System", "ZxidOrder", "apply_fault", "check", "fault_schedules", "linearizable",
           "minimal_failing", "zkpy_node_operations", "zkpy_operations"]
