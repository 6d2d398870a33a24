"""The Wing–Gong–Lowe search over one object's history, as porcupine runs it, with a compact memo.

The history's calls and returns are in one doubly linked list by time (calls before returns at
equal times); a depth-first search linearizes a pending call, *lifts* it and its return out of
the list, and backtracks when it meets the return of an op it has not linearized.  It memoises
(set of linearized ops, model state): two paths that reach the same pair have the same future.

Two changes from porcupine, both for recorded histories of ~10k ops on one znode:

- Ops whose outcome is unknown (no return) sit in a second list.  The candidates at a node are
  the same as porcupine's (every pending call before the first return), but those with a return
  are tried first: an unknown op stays a candidate for the rest of the history, and tried first
  (its call being early) it doubled the states at each node whether or not anything observed it.
- The memo holds one int per entry: a hash of (Zobrist hash of the linearized set, state), the
  Zobrist hash being the XOR of a random 64-bit value per linearized op (O(1) per step).  Before,
  an entry held the set as an n-bit int: ~1.2 kB at 9.6k ops, which is what the bound on memo
  entries was sized by.  A collision can only make the search skip a path, so a linearization it
  finds is one; when it finds none, `linearizable` runs the search again with an exact memo before
  answering False.  The exact memo keys the set as (lo, the set's bits above lo, the set of
  unknown ops): lo, the first op by return order not linearized, has every op before it
  linearized, so the bits kept span only the ops open around it.
- Unknown ops with equal `model.effect` are interchangeable: of those not linearized, the search
  tries only the earliest (by call).  Once their calls are past they are candidates at every
  later node, so any linearization can swap one for an earlier one; without this, a counter's
  dozen lost adds of 1, 2 or 3 made thousands of subsets that all reach the same values.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from .history import Op
from .models import Model

_CALL, _RETURN, _UNKNOWN = 0, 1, 2  # node kinds; the unknown list's tail is an _UNKNOWN node


class SearchTooLarge(Exception):
    """The search memoised more (linearized set, state) pairs than it was allowed: no verdict."""


def linearizable(model: Model, ops: Sequence[Op], max_states: int | None = None,
                 max_exact_states: int | None = None) -> bool:
    """Whether one object's ops have a linearization.  The hashed search decides True; False is
    confirmed by the exact search.  `max_states` bounds the hashed memo, `max_exact_states` the
    exact one (default: the same; its entries are larger); past either, SearchTooLarge."""
    if _search(model, ops, max_states, exact=False):
        return True
    try:
        return _search(model, ops, max_states if max_exact_states is None else max_exact_states, exact=True)
    except SearchTooLarge as e:
        raise SearchTooLarge(f"{e} confirming that the hashed search found no linearization") from None


def _zobrist(n: int) -> list[int]:
    """One random 64-bit value per op: fixed seed, so a run's verdict and timing replay exactly."""
    rng = random.Random(0x2B1D)
    return [rng.getrandbits(64) for _ in range(n)]


def _search(model: Model, ops: Sequence[Op], max_states: int | None, exact: bool) -> bool:
    """One depth-first search; `exact` picks the memo's key (see the module's docstring)."""
    events = sorted([(op.call, 0, i) for i, op in enumerate(ops)]
                    + [(op.ret, 1, i) for i, op in enumerate(ops) if op.ret is not None])
    m = len(events)
    # Node k (1..m) is events[k-1], so nodes compare as their events do.  0 and m + 1 are the
    # head and tail of the list of ops with a return; m + 2 and m + 3 those of the unknown ops,
    # the tail numbered past every node so that "no unknown call before the first return" is
    # the one comparison that ends a node's candidates.
    head, tail, uhead, utail = 0, m + 1, m + 2, m + 3
    nxt = [-1] * (m + 4)
    prv = [-1] * (m + 4)
    kind = [_RETURN] * (m + 4)
    kind[utail] = _UNKNOWN
    index = [0] * (m + 4)
    match = [0] * (m + 4)  # call node -> its return node (0 for an unknown op)
    call_node = [0] * len(ops)
    last, ulast = head, uhead
    for k, (_, is_return, i) in enumerate(events, 1):
        index[k] = i
        if is_return:
            match[call_node[i]] = k
        else:
            call_node[i] = k
            if ops[i].ret is None:
                kind[k] = _UNKNOWN
                nxt[ulast], prv[k], ulast = k, ulast, k
                continue
            kind[k] = _CALL
        nxt[last], prv[k], last = k, last, k
    nxt[last], prv[tail] = tail, last
    nxt[ulast], prv[utail] = utail, ulast
    # Exact keys: ops with a return ranked by return (lin: which are linearized, and a 0 past
    # the last so lo stops), unknown ops ranked among themselves.
    rank = [0] * len(ops)
    for r, k in enumerate(k for k in range(1, m + 1) if kind[k] == _RETURN):
        rank[index[k]] = r
    for r, k in enumerate(k for k in range(1, m + 1) if kind[k] == _UNKNOWN):
        rank[index[k]] = r
    # Unknown ops by effect: ordinal[i], its place among its class's ops by call; used[c], how
    # many of class c are linearized (always the first ones).
    classes: dict[object, int] = {}
    cls = [0] * len(ops)
    ordinal = [0] * len(ops)
    members: list[int] = []
    for k in range(1, m + 1):
        if kind[k] == _UNKNOWN:
            i = index[k]
            c = cls[i] = classes.setdefault(model.effect(ops[i]), len(classes))
            if c == len(members):
                members.append(0)
            ordinal[i] = members[c]
            members[c] += 1
    used = [0] * len(classes)
    lin = bytearray(m + 1)
    zobrist = _zobrist(len(ops))

    pending = sum(1 for op in ops if op.ret is not None)  # returns still in the list
    step = model.step
    state = model.init()
    zob = bits = ubits = lo = 0
    bound = 0  # the first return in the list: unknown calls after it are not candidates
    stack: list[tuple[int, object, int, int, int, int, int]] = []
    cache: set[object] = set()
    entry = nxt[head]
    while pending:
        what = kind[entry]
        if what == _RETURN:  # the first return: the candidates go on with the unknown calls before it
            bound = entry
            entry = nxt[uhead]
            continue
        if what == _UNKNOWN and entry > bound:  # no candidate left: undo the latest choice
            if not stack:
                return False
            entry, state, bound, zob, bits, ubits, lo = stack.pop()
            i = index[entry]
            r = match[entry]
            if r:
                lin[rank[i]] = 0
                pending += 1
                nxt[prv[r]] = r
                prv[nxt[r]] = r
            else:
                used[cls[i]] -= 1
            nxt[prv[entry]] = entry
            prv[nxt[entry]] = entry
            entry = nxt[entry]
            continue
        i = index[entry]
        r = match[entry]
        if not r and ordinal[i] != used[cls[i]]:  # an earlier one of its class is still to be taken
            entry = nxt[entry]
            continue
        ok, new = step(state, ops[i])
        if ok:
            if not exact:
                memo: object = hash((zob ^ zobrist[i], new))
            elif r:
                new_bits, new_lo = bits | (1 << rank[i]), lo
                if rank[i] == lo:
                    new_lo += 1
                    while lin[new_lo]:
                        new_lo += 1
                memo = (new_lo, new_bits >> new_lo, ubits, new)
            else:
                memo = (lo, bits >> lo, ubits | (1 << rank[i]), new)
            if memo not in cache:
                cache.add(memo)
                if max_states is not None and len(cache) > max_states:
                    raise SearchTooLarge(f"more than {max_states} states")
                stack.append((entry, state, bound, zob, bits, ubits, lo))
                state = new
                zob ^= zobrist[i]
                if exact:
                    if r:
                        lin[rank[i]] = 1
                        bits, lo = new_bits, new_lo
                    else:
                        ubits |= 1 << rank[i]
                if not r:
                    used[cls[i]] += 1
                p, n = prv[entry], nxt[entry]  # lift the call and its return out of their list
                nxt[p], prv[n] = n, p
                if r:
                    pending -= 1
                    p, n = prv[r], nxt[r]
                    nxt[p], prv[n] = n, p
                entry = nxt[head]
                continue
        entry = nxt[entry]
    return True
