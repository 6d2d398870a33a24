"""Consistency verification: record what kazoo clients saw, check it against ZooKeeper's guarantees.

    history = History()
    rec = Recorder(client, history, "c1")
    ...                                   # rec.get / set / create / sync / lock(...) ...
    report = check(history)
    assert report.ok, report              # anomalies with their minimal sub-histories
"""

from .history import History, Op, Recorder, RecordedLock
from .linearizability import Anomaly, Report, check, linearizable, minimal_failing
from .models import MODELS, Counter, Lock, Model, Register, Sequence

__all__ = ["History", "Op", "Recorder", "RecordedLock", "Anomaly", "Report", "check", "linearizable",
           "minimal_failing", "MODELS", "Counter", "Lock", "Model", "Register", "Sequence"]
