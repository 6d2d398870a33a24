"""Histories of ZooKeeper operations, and the recorder that writes them from kazoo clients.

An `Op` is one operation as a client saw it: invoked at `call`, completed at `ret` (monotonic
seconds) with `status` "ok" (and its `result`), "error" (and its error name), or "unknown" when
the client cannot tell whether it took effect (connection loss, timeout, session expiry while in
flight, a client that stopped first).  An unknown op has `ret = None`: as in porcupine, it may
take effect at any time after its call, or never.

Each op names the model it is checked against and its key (a znode path): the checker splits a
history by (model, key), P-compositionality, so a history must say which object every op touched.
`zxid` is the zxid of the state an op wrote or observed (a write's mzxid/czxid, a read's mzxid or
pzxid); `seen_zxid` is the highest zxid the client had seen before it sent the op (kazoo's
`last_zxid`, taken from reply headers).  Both feed the checks of ZooKeeper's session guarantees.

Histories are JSON lines (one op a line), so a failing one can be saved and replayed.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, fields
from typing import IO, Any, Self

OK, ERROR, UNKNOWN = "ok", "error", "unknown"


@dataclass(slots=True)
class Op:
    """One operation: what was asked, when, by whom, and what came back."""

    id: int
    client: str
    session: int | None
    model: str  # "register", "counter", "sequence", "lock", "session" or "none" (not checked)
    kind: str  # get exists set create create_ephemeral delete children sync add read acquire release end_session
    key: str
    arg: Any = None
    call: float = 0.0
    ret: float | None = None
    status: str = UNKNOWN
    result: Any = None
    zxid: int | None = None
    seen_zxid: int = 0

    def to_json(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"))

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Op:
        return cls(**{f.name: d[f.name] for f in fields(cls) if f.name in d})

    def __str__(self) -> str:
        end = "…" if self.ret is None else f"{self.ret:.6f}"
        out = self.result if self.status == OK else self.status if self.status == UNKNOWN else self.result
        arg = "" if self.arg is None else f" {self.arg!r}"
        return (f"#{self.id} [{self.call:.6f}, {end}] {self.client} s={self.session} "
                f"{self.model}:{self.key} {self.kind}{arg} -> {self.status} {out!r} zxid={self.zxid}")


class History:
    """A thread-safe, append-only list of ops shared by the recorders of one test."""

    def __init__(self, ops: Iterable[Op] = ()) -> None:
        self.ops: list[Op] = list(ops)
        self._lock = threading.Lock()

    def begin(self, client: str, session: int | None, model: str, kind: str, key: str, arg: Any = None,
              seen_zxid: int = 0) -> Op:
        """Append an op at its invocation; it stays `unknown` until `complete` says otherwise."""
        with self._lock:
            op = Op(len(self.ops), client, session, model, kind, key, arg, time.monotonic(), None, UNKNOWN,
                    seen_zxid=seen_zxid)
            self.ops.append(op)
        return op

    @staticmethod
    def complete(op: Op, status: str, result: Any = None, zxid: int | None = None) -> None:
        ret = time.monotonic()
        if status != UNKNOWN:  # an unknown op has no completion: it may take effect at any later time
            op.ret = ret
        op.status, op.result, op.zxid = status, result, zxid

    def __len__(self) -> int:
        return len(self.ops)

    def __iter__(self) -> Iterator[Op]:
        return iter(self.ops)

    def dump(self, out: IO[str]) -> None:
        with self._lock:
            for op in self.ops:
                out.write(op.to_json() + "\n")

    def save(self, path: str | os.PathLike[str]) -> None:
        with open(path, "w") as f:
            self.dump(f)

    @classmethod
    def parse(cls, lines: Iterable[str]) -> History:
        return cls(Op.from_dict(json.loads(line)) for line in lines if line.strip())

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> History:
        with open(path) as f:
            return cls.parse(f)


def text(data: bytes | None) -> str | None:
    """Znode data as a JSON-safe str (latin-1: every byte maps to one character and back)."""
    return None if data is None else data.decode("latin-1")


def _indeterminate_errors() -> tuple[type[BaseException], ...]:
    from kazoo import exceptions as e
    from kazoo.handlers.threading import KazooTimeoutError

    # The request may have reached a server and been applied; the client cannot know.
    return (e.ConnectionLoss, e.OperationTimeoutError, e.SessionExpiredError, e.SessionMovedError,
            e.ConnectionClosedError, e.RequestTimeoutError, KazooTimeoutError)


_ERROR_NAMES = {"NoNodeError": "NONODE", "NodeExistsError": "NODEEXISTS", "BadVersionError": "BADVERSION",
                "NotEmptyError": "NOTEMPTY", "NoAuthError": "NOAUTH", "BadArgumentsError": "BADARGUMENTS",
                "NoChildrenForEphemeralsError": "NOCHILDRENFOREPHEMERALS", "NotReadOnlyCallError": "NOTREADONLY"}


def error_name(exc: BaseException) -> str:
    return _ERROR_NAMES.get(type(exc).__name__, type(exc).__name__)


class Recorder:
    """A kazoo client whose operations are recorded in a History.

        history = History()
        rec = Recorder(client, history, "c1")
        rec.create("/r", b"0"); rec.sync("/r"); data, stat = rec.get("/r")
        rec.set("/r", b"1", version=stat.version)
        with rec.lock("/lock", "me"): ...
        check(history)

    Each method calls the kazoo method of the same name, records the outcome and returns or
    raises exactly what kazoo did.  `model=` overrides the model an op is checked against (a
    delete of a queue item belongs to the queue, model "sequence", keyed by its parent).
    A session's end (kazoo's LOST, or `stop`) is recorded too: it releases the session's locks.
    """

    def __init__(self, client: Any, history: History, name: str | None = None) -> None:
        from kazoo.protocol.states import KazooState

        self.client, self.history = client, history
        self.name = name or f"client-{id(client):x}"
        self._lost_state = KazooState.LOST
        self._alive_at: dict[int, float] = {}  # session -> call time of its latest op that came back ok
        self._current: int | None = None  # the session of the latest op
        self._ended: set[int] = set()  # sessions whose end is recorded
        self._unsure = _indeterminate_errors()
        client.add_listener(self._state_changed)

    # --- the operations -------------------------------------------------------------------
    def create(self, path: str, value: bytes = b"", acl: Any = None, ephemeral: bool = False,
               sequence: bool = False, makepath: bool = False, model: str | None = None) -> str:
        parent, _, base = path.rpartition("/")
        seq_model = model == "sequence" or (model is None and sequence)
        key = (parent or "/") if seq_model else path
        arg = [base, text(value), sequence] if seq_model else text(value)

        def run() -> tuple[Any, Any, int | None]:
            created, stat = self.client.create(path, value, acl=acl, ephemeral=ephemeral, sequence=sequence,
                                               makepath=makepath, include_data=True)
            return created, (created.rpartition("/")[2] if seq_model else 0), stat.czxid

        kind = "create_ephemeral" if ephemeral and not seq_model else "create"
        return self._record("sequence" if seq_model else (model or "register"), kind, key, arg, run)

    def get(self, path: str, watch: Any = None) -> tuple[bytes, Any]:
        def run() -> tuple[Any, Any, int | None]:
            data, stat = self.client.get(path, watch=watch)
            return (data, stat), [text(data), stat.version], stat.mzxid

        return self._record("register", "get", path, None, run)

    def exists(self, path: str, watch: Any = None) -> Any:
        def run() -> tuple[Any, Any, int | None]:
            stat = self.client.exists(path, watch=watch)
            return stat, (None if stat is None else stat.version), (None if stat is None else stat.mzxid)

        return self._record("register", "exists", path, None, run)

    def set(self, path: str, value: bytes, version: int = -1) -> Any:
        def run() -> tuple[Any, Any, int | None]:
            stat = self.client.set(path, value, version=version)
            return stat, stat.version, stat.mzxid

        return self._record("register", "set", path, [text(value), version], run)

    def delete(self, path: str, version: int = -1, model: str | None = None) -> bool:
        parent, _, base = path.rpartition("/")
        seq_model = model == "sequence"
        key, arg = ((parent or "/"), base) if seq_model else (path, version)

        def run() -> tuple[Any, Any, int | None]:
            return self.client.delete(path, version=version), None, None

        return self._record(model or "register", "delete", key, arg, run)

    def get_children(self, path: str, watch: Any = None) -> list[str]:
        def run() -> tuple[Any, Any, int | None]:
            children, stat = self.client.get_children(path, watch=watch, include_data=True)
            return children, sorted(children), stat.pzxid

        return self._record("sequence", "children", path, None, run)

    def sync(self, path: str = "/") -> str:
        """A sync: the session's reads after it are checked for linearizability."""
        return self._record("none", "sync", path, None, lambda: (self.client.sync(path), None, None))

    def counter_add(self, path: str, delta: int = 1) -> int:
        """Add to the integer in `path` by version-checked setData retries (kazoo's Counter does the
        same); returns the new value.  A missing node is created holding 0 (b"" is 0 too)."""
        from kazoo.exceptions import BadVersionError, NodeExistsError, NoNodeError

        op = self._begin("counter", "add", path, delta)
        maybe_applied = False  # a set that did not come back may have been applied
        try:
            while True:
                try:
                    data, stat = self.client.get(path)
                except NoNodeError:  # a new counter is 0, as the model's initial state
                    with contextlib.suppress(NodeExistsError):
                        self.client.create(path, b"0", makepath=True)
                    continue
                new = int(data or 0) + delta
                try:
                    maybe_applied = True
                    written = self.client.set(path, str(new).encode(), version=stat.version)
                except BadVersionError:
                    maybe_applied = False
                    continue
                self._ok(op, new, written.mzxid)
                return new
        except BaseException as exc:
            self._failed(op, exc, unsure=maybe_applied)
            raise

    def counter_get(self, path: str) -> int:
        def run() -> tuple[Any, Any, int | None]:
            data, stat = self.client.get(path)
            return int(data or 0), int(data or 0), stat.mzxid

        return self._record("counter", "read", path, None, run)

    def lock(self, path: str, identifier: str = "") -> RecordedLock:
        return RecordedLock(self, self.client.Lock(path, identifier), path)

    def election(self, path: str, identifier: str = "") -> RecordedElection:
        return RecordedElection(self, self.client.Election(path, identifier), path)

    def record(self, model: str, kind: str, key: str, fn: Callable[[], Any], arg: Any = None,
               result: Callable[[Any], Any] = lambda r: r) -> Any:
        """Record an operation of your own recipe: `fn()` is run; `result(value)` is what is stored."""
        def run() -> tuple[Any, Any, int | None]:
            value = fn()
            return value, result(value), None

        return self._record(model, kind, key, arg, run)

    def stop(self) -> None:
        """Stop the client, closing its session (its ephemerals and locks go with it)."""
        session = self._session()
        op = self._begin("session", "end_session", "", None)
        op.call = self._alive_at.get(session, op.call) if session is not None else op.call
        if session is not None:
            self._ended.add(session)
        try:
            self.client.stop()
        finally:
            self._ok(op, None, None)

    # --- the machinery --------------------------------------------------------------------
    def _session(self) -> int | None:
        cid = self.client.client_id
        return cid[0] if cid else None

    def _note_session(self) -> int | None:
        """The client's session now; a new one means the old one expired (kazoo starts a new
        session only then), which is recorded as its end if the LOST event did not record it."""
        session = self._session()
        if session is not None:
            if self._current is not None and session != self._current:
                self._end(self._current)
            self._current = session
        return session

    def _end(self, session: int) -> None:
        """Record the end of `session` once: some time after its last op that came back ok was
        sent (a sound lower bound), and before now."""
        if session in self._ended:
            return
        self._ended.add(session)
        op = self.history.begin(self.name, session, "session", "end_session", "", None)
        if session in self._alive_at:
            op.call = self._alive_at[session]
        History.complete(op, "ok")

    def _begin(self, model: str, kind: str, key: str, arg: Any) -> Op:
        return self.history.begin(self.name, self._note_session(), model, kind, key, arg, self.client.last_zxid or 0)

    def _ok(self, op: Op, result: Any, zxid: int | None) -> None:
        session = self._note_session()
        if op.session is None:  # sent while kazoo was between connections: it ran in the session it came back in
            op.session = session
        History.complete(op, "ok", result, zxid)
        if op.session is not None and op.call > self._alive_at.get(op.session, 0.0):
            self._alive_at[op.session] = op.call

    def _failed(self, op: Op, exc: BaseException, unsure: bool = True) -> None:
        session = self._note_session()
        if op.session is None:
            op.session = session
        if (unsure and isinstance(exc, self._unsure)) or not isinstance(exc, Exception):
            History.complete(op, UNKNOWN, error_name(exc))
        else:
            History.complete(op, ERROR, error_name(exc))

    def _record(self, model: str, kind: str, key: str, arg: Any, run: Callable[[], tuple[Any, Any, int | None]]) -> Any:
        op = self._begin(model, kind, key, arg)
        try:
            value, result, zxid = run()
        except BaseException as exc:
            self._failed(op, exc)
            raise
        self._ok(op, result, zxid)
        return value

    def _state_changed(self, state: Any) -> None:
        """kazoo's LOST: the session expired on the servers, releasing its locks at some time
        after its last op that came back ok was sent (a sound lower bound), and before now."""
        if state != self._lost_state:
            return
        session = self._session() or self._current  # kazoo may have dropped the id already
        if session is not None:
            self._end(session)


class RecordedLock:
    """A kazoo Lock whose acquire and release are recorded (model "lock", keyed by its path).
    A leader election is the same model: `acquire` is being elected, `release` is resigning."""

    def __init__(self, recorder: Recorder, lock: Any, path: str) -> None:
        self.recorder, self.lock, self.path = recorder, lock, path

    def acquire(self, blocking: bool = True, timeout: float | None = None) -> bool:
        return self.recorder._record("lock", "acquire", self.path, None,
                                     lambda: (got := self.lock.acquire(blocking, timeout), got, None))

    def release(self) -> bool:
        return self.recorder._record("lock", "release", self.path, None,
                                     lambda: (done := self.lock.release(), done, None))

    def __enter__(self) -> Self:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        with contextlib.suppress(Exception):
            self.release()


class RecordedElection:
    """A kazoo Election whose leaderships are recorded as a lock (model "lock"): elected is an
    acquire (invoked when `run` is), resigning a release (from `func`'s return to `run`'s)."""

    def __init__(self, recorder: Recorder, election: Any, path: str) -> None:
        self.recorder, self.election, self.path = recorder, election, path

    def run(self, func: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        rec = self.recorder
        elected = rec._begin("lock", "acquire", self.path, None)
        resigned: list[Op] = []

        def lead() -> Any:
            rec._ok(elected, True, None)
            try:
                return func(*args, **kwargs)
            finally:
                resigned.append(rec._begin("lock", "release", self.path, None))
        try:
            value = self.election.run(lead)
        except BaseException as exc:
            rec._failed(resigned[0] if resigned else elected, exc)
            raise
        rec._ok(resigned[0], True, None)
        return value
