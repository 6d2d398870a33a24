"""Consistency verification: record what kazoo clients saw, check it against ZooKeeper's guarantees.

    history = History()
    rec = Recorder(client, history, "c1")
    ...                                   # rec.get / set / create / sync / lock(...) ...
    report = check(history)
    assert report.ok, report              # anomalies with their minimal sub-histories
"""

from .history import History, Op, RecordedElection, RecordedLock, Recorder
from .linearizability import check, linearizable, minimal_failing
from .models import MODELS, Counter, Lock, Model, Register, Sequence
from .report import Anomaly, Report

__all__ = ["MODELS", "Anomaly", "Counter", "History", "Lock", "Model", "Op", "RecordedElection", "RecordedLock", "Recorder", "Register",
           "Report", "Sequence", "check", "linearizable", "minimal_failing"]
