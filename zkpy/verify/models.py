"""Sequential specifications of ZooKeeper objects, for the linearizability checker.

A model's `step(state, op)` says whether `op`, with the outcome it had, is what the object would
do in `state`, and the state after it.  States are hashable values (tuples, frozensets) so the
checker can memoise (linearized set, state) pairs.  An op with status "unknown" had no visible
outcome: the step applies it as the object would and accepts it; that it may never have taken
effect is the checker's business (it need not linearize unknown ops at all).

`needs`/`provides` name the values a read observed and a write produced, so the shrinker keeps the
write a kept read depends on; a write whose product the history cannot name (a set or add whose
reply was lost) provides `wildcard(tag)` (`ANY`, or `(kind,
ANY)`), so a kept op whose need no named write meets keeps every such write; `observed`/`written` are the comparable values of one znode's state
for the session checks (a read at zxid z must see what the write at zxid z wrote).
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Any

from .history import ERROR, OK, UNKNOWN, Op

State = Hashable
ACCEPT_ERRORS = frozenset({"NOAUTH", "BADARGUMENTS", "NOCHILDRENFOREPHEMERALS", "NOTREADONLY"})
ANY = "<any>"  # a value the history cannot name: a lost reply's version, count or sequence number


def wildcard(tag: Any) -> Any:
    """The tag that a write of unknown product provides for `tag`'s kind."""
    return (tag[0], ANY) if isinstance(tag, tuple) else ANY


class Model:
    """A sequential object; one instance checks every key of its kind."""

    name = ""
    reads: frozenset[str] = frozenset()  # kinds that only observe: checked for linearizability after a sync

    def init(self) -> State:
        raise NotImplementedError

    def step(self, state: State, op: Op) -> tuple[bool, State]:
        raise NotImplementedError

    def needs(self, op: Op) -> frozenset[Any]:
        return frozenset()

    def provides(self, op: Op) -> frozenset[Any]:
        return frozenset()

    def effect(self, op: Op) -> Hashable:
        """What `step` reads of an op whose outcome is unknown: the checker treats two unknown
        ops with equal effects as interchangeable.  By default all an op says but its times."""
        return repr((op.kind, op.arg, op.session, op.result))

    def observed(self, op: Op) -> Any:
        """The value a read saw, compared with `written` of the write at its zxid; None: not compared."""
        return None

    def written(self, op: Op) -> Any:
        return None


class Register(Model):
    """One znode's data and version: create, get, exists, set (version-checked: CAS), delete;
    an ephemeral one ("create_ephemeral") goes with its session ("end_session").
    State: None (no node) or (data, version, ephemeral owner or None)."""

    name = "register"
    reads = frozenset({"get", "exists"})

    def init(self) -> State:
        return None

    def step(self, state: Any, op: Op) -> tuple[bool, State]:
        kind, status, result = op.kind, op.status, op.result
        if status == ERROR and result in ACCEPT_ERRORS:
            return True, state
        if kind == "get":
            if status == OK:
                return state is not None and state[0] == result[0] and state[1] == result[1], state
            return (state is None) == (result == "NONODE"), state
        if kind == "exists":
            return (state is None and result is None) or (state is not None and state[1] == result), state
        if kind == "set":
            data, expected = op.arg
            if state is None:
                return status == UNKNOWN or result == "NONODE", state
            if expected not in (-1, state[1]):
                return status == UNKNOWN or result == "BADVERSION", state
            if status == OK:
                return result == state[1] + 1, (data, state[1] + 1, state[2])
            return status == UNKNOWN, (data, state[1] + 1, state[2])
        if kind == "end_session":
            return True, (None if state is not None and state[2] == op.session else state)
        if kind in ("create", "create_ephemeral"):
            if state is not None:
                return status == UNKNOWN or result == "NODEEXISTS", state
            if status == ERROR:
                return result == "NONODE", state  # no parent: this partition cannot tell, accept
            return True, (op.arg, 0, op.session if kind == "create_ephemeral" else None)
        if kind == "delete":
            if state is None:
                return status == UNKNOWN or result == "NONODE", state
            if op.arg not in (-1, state[1]):
                return status == UNKNOWN or result == "BADVERSION", state
            if status == ERROR:
                return result == "NOTEMPTY", state  # children live in another partition: accept
            return True, None
        raise ValueError(f"register has no {kind!r}")

    def needs(self, op: Op) -> frozenset[Any]:
        """A get needs a write of its data and version; a write that found the node needs its
        creation, and one that returned version v needs the write that made v - 1; a
        version-checked set whose reply was lost took effect only on the version it expected,
        so it needs the write that made that one (else a witness keeps the lost set without
        its chain, and fails only because the chain is gone)."""
        if op.status == UNKNOWN and op.kind == "set" and op.arg[1] != -1:
            return frozenset(["exists", ("version", op.arg[1])])
        if op.status != OK:
            if op.result == "NONODE":
                return frozenset(["deleted"])  # when a delete made it so
            return frozenset(["exists"]) if op.result in ("BADVERSION", "NODEEXISTS", "NOTEMPTY") else frozenset()
        if op.kind in ("create", "create_ephemeral"):
            return frozenset(["deleted"])
        if op.kind == "get":
            return frozenset([("data", op.result[0]), ("version", op.result[1]), "exists"])
        if op.kind == "set":
            return frozenset(["exists"] + ([("version", op.result - 1)] if op.status == OK else []))
        return frozenset(["exists"]) if op.kind == "delete" else frozenset()

    def provides(self, op: Op) -> frozenset[Any]:
        if op.status == ERROR:
            return frozenset()
        if op.kind in ("delete", "end_session"):
            return frozenset(["deleted"])
        if op.kind == "set":
            return frozenset([("data", op.arg[0]), ("version", op.result if op.status == OK else ANY)])
        if op.kind in ("create", "create_ephemeral"):
            return frozenset([("data", op.arg), ("version", 0), "exists"])
        return frozenset()

    def observed(self, op: Op) -> Any:
        return op.result[0] if op.kind == "get" and op.status == OK else None

    def written(self, op: Op) -> Any:
        if op.kind == "set":
            return op.arg[0]
        return op.arg if op.kind in ("create", "create_ephemeral") else None


class Counter(Model):
    """An integer: `add(delta)` returns the new value, `read` returns the value.  State: the int."""

    name = "counter"
    reads = frozenset({"read"})

    def init(self) -> State:
        return 0

    def step(self, state: Any, op: Op) -> tuple[bool, State]:
        if op.kind == "read":
            return op.status != OK or op.result == state, state
        if op.kind == "add":
            if op.status == ERROR:
                return True, state
            new = state + op.arg
            return op.status == UNKNOWN or op.result == new, new
        raise ValueError(f"counter has no {op.kind!r}")

    def effect(self, op: Op) -> Hashable:
        """An unknown add is its delta: whoever sent it, it adds the same."""
        return (op.kind, op.arg)

    def needs(self, op: Op) -> frozenset[Any]:
        if op.status != OK:
            return frozenset()
        before = op.result if op.kind == "read" else op.result - op.arg
        return frozenset([before]) if before != 0 else frozenset()

    def provides(self, op: Op) -> frozenset[Any]:
        if op.kind != "add" or op.status == ERROR:
            return frozenset()
        return frozenset([op.result if op.status == OK else ANY])

    def observed(self, op: Op) -> Any:
        return op.result if op.kind == "read" and op.status == OK else None

    def written(self, op: Op) -> Any:
        return op.result if op.kind == "add" and op.status == OK else None


class Sequence(Model):
    """The children of one parent znode with sequential creates, as ZooKeeper numbers them: the
    suffix counts the parent's child creations so far (Apache ZooKeeper 3.8 and zkpy: create,
    delete, create gives -0000000000 then -0000000001, though the Stat's cversion, which counts
    deletions too, is then 2), so no two creates get one number and a gap needs a create whose
    outcome is unknown (or that failed after taking a number: none does).
    State: (cversion, frozenset of child names); the parent starts new (cversion 0, no children).
    Ops: create (arg [name or prefix, data, sequential]; a sequential name is prefix + 10 digits),
    delete (arg: the child's name), children (result: the sorted names)."""

    name = "sequence"
    reads = frozenset({"children"})

    def init(self) -> State:
        return (0, frozenset())

    def step(self, state: Any, op: Op) -> tuple[bool, State]:
        cversion, children = state
        status, result = op.status, op.result
        if status == ERROR and result in ACCEPT_ERRORS:
            return True, state
        if op.kind == "children":
            return status != OK or frozenset(result) == children and len(result) == len(children), state
        if op.kind == "create":
            base, _, sequential = op.arg
            name = f"{base}{cversion:010d}" if sequential else base
            if status == ERROR:
                return result == "NONODE" or (result == "NODEEXISTS" and name in children), state
            if name in children:
                return status == UNKNOWN, state
            if status == OK and result != name:
                return False, state
            return True, (cversion + 1, children | {name})
        if op.kind == "delete":
            if op.arg not in children:
                return status == UNKNOWN or result == "NONODE", state
            if status == ERROR:
                return result in ("BADVERSION", "NOTEMPTY"), state
            return True, (cversion, children - {op.arg})  # a deletion takes no number
        raise ValueError(f"sequence has no {op.kind!r}")

    def effect(self, op: Op) -> Hashable:
        """An unknown create is its name or prefix (its data is not modelled); a delete, its child."""
        return (op.kind, op.arg[0], op.arg[2]) if op.kind == "create" else (op.kind, op.arg)

    def needs(self, op: Op) -> frozenset[Any]:
        """A listing needs the creates of its names; sequential number n needs the create of n - 1."""
        if op.status != OK:
            return frozenset()
        if op.kind == "children":
            return frozenset(op.result)
        if op.kind == "create" and op.arg[2] and int(op.result[-10:]) > 0:
            return frozenset([("cversion", int(op.result[-10:]))])
        return frozenset()

    def provides(self, op: Op) -> frozenset[Any]:
        """Every create takes the next number; only a sequential create's reply names it."""
        if op.status == ERROR:
            return frozenset()
        if op.kind != "create":
            return frozenset()
        if op.status != OK:
            return frozenset([ANY, ("cversion", ANY)])
        if op.arg[2]:
            return frozenset([op.result, ("cversion", int(op.result[-10:]) + 1)])
        return frozenset([op.result, ("cversion", ANY)])


class Lock(Model):
    """A lock or a leadership held by a session: at most one holder at a time, freed by a
    release or by the end of the holder's session.  State: the holder's session id or None."""

    name = "lock"

    def init(self) -> State:
        return None

    def step(self, state: Any, op: Op) -> tuple[bool, State]:
        if op.kind == "acquire":
            if op.status == ERROR or (op.status == OK and op.result is False):
                return True, state  # not acquired (timed out or failed): nothing to check
            if state is None:
                return True, op.session
            return op.status == UNKNOWN, state
        if op.kind in ("release", "end_session"):
            return True, (None if state == op.session else state)
        raise ValueError(f"lock has no {op.kind!r}")


MODELS: dict[str, Model] = {m.name: m for m in (Register(), Counter(), Sequence(), Lock())}
