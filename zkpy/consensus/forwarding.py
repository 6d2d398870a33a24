"""Client traffic between members (ZooKeeper's Learner/LearnerHandler request packets).

Learners send the leader their clients' writes, session creations and closes, session
activity, syncs and reconnect checks; the leader answers syncs and revalidations.  Every
message is `("app", kind, fields...)`, and every field is checked before anything acts on it.
Pure: no I/O.
"""

from __future__ import annotations

from typing import Any, Collection

from .zab import fields_match


def is_app(msg: Any) -> bool:
    return isinstance(msg, (list, tuple)) and len(msg) > 1 and msg[0] == "app"


def _i64(x: object) -> bool:
    return type(x) is int and -(1 << 63) <= x < (1 << 63)


def _identities(x: object) -> bool:
    return type(x) is list and all(type(i) is list and len(i) == 2 and type(i[0]) is str and type(i[1]) is str
                                   for i in x)


def schema(write_ops: Collection[int]) -> dict[str, tuple]:
    return {
        "request": (_i64, _i64, (lambda x: x in write_ops), (lambda x: type(x) is bytes), _identities),
        "createsession": (_i64, (lambda x: _i64(x) and x >= 0)),
        "closesession": (_i64, _i64),
        "touch": ((lambda x: type(x) is list and all(_i64(s) for s in x)),),
        "sync": (_i64,),
        "synced": (_i64, _i64),
        "revalidate": (_i64, _i64),
        "revalidated": (_i64, (lambda x: type(x) is bool)),
    }


def well_formed(checks: dict[str, tuple], msg: Any) -> bool:
    kind = msg[1] if type(msg[1]) is str else None
    fields = checks.get(kind) if kind is not None else None
    return fields is not None and fields_match(fields, msg[2:])
