"""Linearizability checker: Wing & Gong's search with Lowe's memoization, per partition.

Python twin of porcupine/checker.go.
"""
from __future__ import annotations

import dataclasses
import gc
from bisect import bisect_right
from dataclasses import dataclass, field
from functools import partial
from itertools import chain
from operator import attrgetter
from typing import Any, Callable, List, Optional, Tuple

from sim.realtime import monotonic

from .model import (
    CheckResult,
    DefaultDescribeOperation,
    DefaultDescribeState,
    Event,
    Illegal,
    Model,
    NoPartition,
    NoPartitionEvent,
    Ok,
    Operation,
    ReturnEvent,
    ShallowEqual,
    Unknown,
)

EntryKind = bool
callEntry: EntryKind = False
returnEntry: EntryKind = True

# Iterations of the search between two yields to the scheduler in checkParallel, which reads
# the clock before each slice.
_SLICE = 1024

# Items (operations, events, entries, steps of the visualization) that the other phases handle
# between two readings of the clock: the reading is then free next to the work, and a phase
# stops within a few milliseconds of the deadline.
_CHUNK = 4096

# The clock of the budget, read through this name so that a test can put a fake clock in its
# place. Real time even under simulated time (--sim): the budget bounds the CPU spent checking,
# which a virtual clock, still while one thread computes, would not.
_now = monotonic


class _TimedOut(Exception):
    """The deadline passed in the middle of a phase; the check's answer is Unknown."""


# Freeing what a building loop made (entries, links, buckets) takes about a tenth of the time
# the loop took to make it (0.08 to 0.14 measured), and a check cut short frees it all
# before it returns: a quarter of a second for a million-operation partition. So the
# deadline of a check comes earlier by this share of the time spent in its building loops.
_TEARDOWN = 0.15


class _Deadline:
    """The end of a budget, shared by the phases of one check (or one page), read every _CHUNK items.

    It is the twin of Go's kill flag, which every goroutine of the search polls; here the
    phases that Go runs before its clock starts (partitioning, building the entries) poll it too.
    Once passed it stays passed without reading the clock again. spent: seconds in building
    loops (_pieces) so far, of which a share (teardown) is kept for freeing what they built.
    """

    __slots__ = ("at", "passed", "teardown", "spent", "last")

    def __init__(self, timeout: Optional[float], teardown: Optional[float] = None):
        self.last = _now() if timeout and timeout > 0 else None
        self.at = self.last + timeout if self.last is not None else None
        self.passed = False
        self.teardown = _TEARDOWN if teardown is None else teardown
        self.spent = 0.0

    def reached(self, building: bool = False) -> bool:
        if not self.passed and self.at is not None:
            now = _now()
            if building:  # the time since the last reading went into the piece just built
                self.spent += now - self.last
            self.last = now
            if now + self.teardown * self.spent >= self.at:
                self.passed = True
        return self.passed

    def check(self, building: bool = False) -> None:
        if self.reached(building):
            raise _TimedOut


_NO_DEADLINE = _Deadline(None)


def _pieces(items, deadline: _Deadline):
    """(offset, slice) for each _CHUNK items of items, checking the deadline before each slice.

    The loops over pieces are the ones that build the check's per-item structures, so the
    time between two of their readings counts as building time.
    """
    for lo in range(0, len(items), _CHUNK):
        deadline.check(building=lo > 0)
        yield lo, items[lo:lo + _CHUNK]


class entry:
    """One call or return of an operation, placed on the time line of its partition."""

    __slots__ = ("kind", "value", "id", "time", "clientId")

    def __init__(self, kind: EntryKind, value: Any, id: int, time: int, clientId: int):
        self.kind = kind
        self.value = value
        self.id = id
        self.time = time
        self.clientId = clientId

    def __repr__(self):
        k = "return" if self.kind else "call"
        return f"entry({k}, {self.value!r}, id={self.id}, time={self.time}, client={self.clientId})"


@dataclass
class LinearizationInfo:
    """What CheckOperationsVerbose / CheckEventsVerbose found, for Visualize.

    history: per partition, its entries in time order. partialLinearizations: per partition,
    the distinct longest linearizable prefixes found (lists of operation ids). checked (no Go
    twin): per partition, whether its search started before the time ran out; an unchecked
    partition has no entries here, since building them is part of the timed check.
    """

    history: List[List[entry]] = field(default_factory=list)
    partialLinearizations: List[List[List[int]]] = field(default_factory=list)
    checked: List[bool] = field(default_factory=list)


_byTime = attrgetter("time")


def makeEntries(history: List[Operation], deadline: _Deadline = _NO_DEADLINE) -> List[entry]:
    # All calls, then all returns, sorted stably by time: at the same time a call comes before
    # a return, as Go's sort orders them, without building a key tuple per entry.
    # A call and its return share one id object: fewer objects to free when the check ends.
    ids = list(range(len(history)))
    entries = []
    for lo, piece in _pieces(history, deadline):
        entries += [
            entry(callEntry, elem.Input, id, elem.Call, elem.ClientId)
            for id, elem in zip(ids[lo:lo + _CHUNK], piece)
        ]
    for lo, piece in _pieces(history, deadline):
        entries += [
            entry(returnEntry, elem.Output, id, elem.Return, elem.ClientId)
            for id, elem in zip(ids[lo:lo + _CHUNK], piece)
        ]
    _sortByTime(entries, deadline)
    return entries


def _sortByTime(entries: List[entry], deadline: _Deadline) -> None:
    """Sort entries by time, stably, in place, in steps of at most about 16 * _CHUNK entries.

    One list.sort of a million-operation partition takes half a second or more, too long a
    step for the budget. A longer list is dealt, in order, into buckets of neighbouring
    times (split at times sampled from the list, 32 samples a bucket), and each bucket is
    sorted on its own: equal times share a bucket, so the result is the stable sort's.
    """
    step = 16 * _CHUNK
    if len(entries) <= step:
        entries.sort(key=_byTime)
        return
    nbuckets = 2 * len(entries) // step  # of step / 2 entries on average
    sample = []
    for _, piece in _pieces(entries[:: max(1, len(entries) // (32 * nbuckets))], deadline):
        sample += map(_byTime, piece)
    sample.sort()
    splitters = sample[32::32]
    bucketOf = partial(bisect_right, splitters)
    buckets = [[] for _ in range(len(splitters) + 1)]
    add = [b.append for b in buckets]
    for _, piece in _pieces(entries, deadline):
        for e, b in zip(piece, map(bucketOf, map(_byTime, piece))):
            add[b](e)
    out = []
    for b in buckets:
        deadline.check()
        b.sort(key=_byTime)
        out += b
    entries[:] = out


def renumber(events: List[Event], deadline: _Deadline = _NO_DEADLINE) -> List[Event]:
    m = {}
    out = []
    for _, piece in _pieces(events, deadline):
        for v in piece:
            r = m.get(v.Id)
            if r is None:
                r = m[v.Id] = len(m)
            out.append(Event(v.ClientId, v.Kind, v.Value, r))
    return out


def convertEntries(events: List[Event], deadline: _Deadline = _NO_DEADLINE) -> List[entry]:
    # an event's position in the list is its time
    entries = []
    for lo, piece in _pieces(events, deadline):
        entries += [
            entry(returnEntry if elem.Kind == ReturnEvent else callEntry, elem.Value, elem.Id, i, elem.ClientId)
            for i, elem in enumerate(piece, lo)
        ]
    return entries


def _makeLinkedEntries(entries: List[entry], deadline: _Deadline = _NO_DEADLINE):
    """Doubly linked list over node numbers instead of node objects (cheaper in Python).

    Node 0 is the head sentinel, node 2k+1 the call of operation k, node 2k+2 its return
    (so a call's match is node+1 and odd nodes are calls), node 2n+1 a tail sentinel that spares
    lift/unlift the nil checks. Returns (n, nxt, prv, inputs, outputs).
    """
    n = len(entries) // 2
    size = 2 * n + 2
    nxt = [-1] * size
    prv = [-1] * size
    inputs = [None] * n
    outputs = [None] * n
    last = 0
    for _, piece in _pieces(entries, deadline):
        for e in piece:
            k = e.id
            if not 0 <= k < n:
                raise ValueError(f"porcupine: operation id {k} out of range for {n} operations")
            if e.kind == returnEntry:
                node = 2 * k + 2
                outputs[k] = e.value
                # Go would silently treat such a call as a second return; a clear error is better
                if prv[node - 1] == -1:
                    raise ValueError(f"porcupine: operation {k} returns before it is called")
            else:
                node = 2 * k + 1
                inputs[k] = e.value
            if prv[node] != -1:
                raise ValueError(f"porcupine: operation {k} has more than one {'return' if node & 1 == 0 else 'call'}")
            nxt[last] = node
            prv[node] = last
            last = node
    tail = size - 1
    nxt[last] = tail
    prv[tail] = last
    if len(entries) != 2 * n or prv.count(-1) != 1:  # only the head has no previous node
        raise ValueError("porcupine: every operation needs exactly one call and one return")
    return n, nxt, prv, inputs, outputs


def checkSingle(model: Model, history: List[entry], computePartial: bool, longest: list,
                deadline: _Deadline = _NO_DEADLINE):
    """Search one partition; a generator that yields every _SLICE steps and returns the verdict.

    Go's version checks a shared kill flag on every step; here the scheduler in checkParallel
    reads the deadline between slices and stops resuming (closes) the generator; linking the
    entries, before the first step, reads it itself (and raises _TimedOut). longest (length n,
    filled in place) receives, per operation id, the longest linearizable prefix containing it
    (a list of ids, shared).
    """
    n, nxt, prv, inputs, outputs = _makeLinkedEntries(history, deadline)
    longest.extend([None] * (n - len(longest)))
    tail = 2 * n + 1
    step = model.Step
    equal = model.Equal
    # Lowe's cache of (linearized bitset, state) pairs; the bitset is an int (see bitset.py).
    # Go keeps a list of states per bitset and scans it with Equal; with ShallowEqual and
    # hashable states a set of pairs gives the same answers without the scan, which matters
    # when many orders of concurrent appends reach the same bitset with different states.
    hashed = set() if equal is ShallowEqual else None
    cache = {}  # bitset -> states reached with it, when Equal is custom or a state unhashable
    callIds = []  # the stack of linearized calls: their ids,
    callStates = []  # the state before each,
    callLins = []  # and the bitset before each
    # Partial linearizations. Go, on every backtrack, gives the current stack (copied) to each
    # stacked id whose recorded prefix is shorter: O(depth) per backtrack. Here the result is
    # the same at O(1): the stack is also kept as immutable cells (id, cell below), so a prefix
    # is captured by its top cell, and each stack position keeps the deepest backtrack it has
    # seen (posDepth/posCell, the earliest one on ties); that reaches the position below when
    # the position is popped, and the id's record (bestLen/longest) at that moment too.
    top = None
    posDepth = []
    posCell = []
    bestLen = [0] * n
    finished = False
    state = model.Init()
    linearized = 0
    budget = _SLICE
    try:
        e = nxt[0]
        while e != tail:
            budget -= 1
            if not budget:
                yield
                budget = _SLICE
            if e & 1:  # a call
                k = e >> 1
                ok, newState = step(state, inputs[k], outputs[k])
                if not ok:
                    e = nxt[e]
                    continue
                newLinearized = linearized | (1 << k)
                if hashed is not None:
                    key = (newLinearized, newState)
                    try:
                        if key in hashed:
                            e = nxt[e]
                            continue
                        hashed.add(key)
                    except TypeError:  # an unhashable state: move to Go's bucket lists
                        for lin, s in hashed:
                            cache.setdefault(lin, []).append(s)
                        hashed = None
                if hashed is None:
                    seen = cache.get(newLinearized)
                    if seen is None:
                        cache[newLinearized] = [newState]
                    elif any(equal(newState, s) for s in seen):
                        e = nxt[e]
                        continue
                    else:
                        seen.append(newState)
                callIds.append(k)
                callStates.append(state)
                callLins.append(linearized)
                if computePartial:
                    top = (k, top)
                    posDepth.append(0)
                    posCell.append(None)
                state = newState
                linearized = newLinearized
                # lift the call and its return out of the list
                p = prv[e]
                x = nxt[e]
                nxt[p] = x
                prv[x] = p
                r = e + 1
                p = prv[r]
                x = nxt[r]
                nxt[p] = x
                prv[x] = p
                e = nxt[0]
            else:  # a return whose call is not linearized: backtrack
                if not callIds:
                    return False
                k = callIds.pop()
                if computePartial:
                    t = len(callIds)
                    d = posDepth.pop()
                    c = posCell.pop()
                    if not d:  # nothing deeper seen above: this backtrack is the deepest
                        d = t + 1
                        c = top
                    if d > bestLen[k]:
                        bestLen[k] = d
                        longest[k] = c
                    if t and d > posDepth[-1]:
                        posDepth[-1] = d
                        posCell[-1] = c
                    top = top[1]
                state = callStates.pop()
                linearized = callLins.pop()
                # unlift the call c and its return r
                c = 2 * k + 1
                r = c + 1
                nxt[prv[r]] = r
                prv[nxt[r]] = r
                nxt[prv[c]] = c
                prv[nxt[c]] = c
                e = nxt[c]
        # the whole partition is linearized, in the order of the stack
        finished = True
        seq = callIds[:]
        for i in range(n):
            longest[i] = seq
        return True
    finally:
        if computePartial and not finished:
            # stopped or failed: stacked ids still get what they have seen, then cells -> lists
            for t in range(len(callIds) - 1, -1, -1):
                d = posDepth[t]
                c = posCell[t]
                if not d:
                    continue
                k = callIds[t]
                if d > bestLen[k]:
                    bestLen[k] = d
                    longest[k] = c
                if t and d > posDepth[t - 1]:
                    posDepth[t - 1] = d
                    posCell[t - 1] = c
            cells = longest[:]  # keeps every cell alive, so that id() stays unique
            lists = {}
            for i, c in enumerate(cells):
                if c is not None:
                    seq = lists.get(id(c))
                    if seq is None:
                        seq = lists[id(c)] = []
                        while c is not None:
                            seq.append(c[0])
                            c = c[1]
                        seq.reverse()
                    longest[i] = seq


def fillDefault(model: Model) -> Model:
    model = dataclasses.replace(model)  # Go passes the Model by value
    if model.Partition is None:
        model.Partition = NoPartition
    if model.PartitionEvent is None:
        model.PartitionEvent = NoPartitionEvent
    if model.Equal is None:
        model.Equal = ShallowEqual
    if model.DescribeOperation is None:
        model.DescribeOperation = DefaultDescribeOperation
    if model.DescribeState is None:
        model.DescribeState = DefaultDescribeState
    return model


def checkParallel(
    model: Model,
    history: List[Callable[[_Deadline], List[entry]]],
    computeInfo: bool,
    deadline: _Deadline,
) -> Tuple[CheckResult, LinearizationInfo]:
    """Check every partition; history holds, per partition, a function that builds its entries.

    Python threads do not run in parallel, so the partitions' searches are interleaved in this
    thread, round robin, _SLICE steps at a time: like goroutines on one core, a quick verdict on
    one partition is never stuck behind a slow partition. Building a partition's entries is
    its search's first slice, which reads the deadline every _CHUNK entries: Go builds them all
    before its clock starts because that is quick there; a million operations take seconds here.
    """
    entries = [[] for _ in history]
    longest = [[] for _ in history]
    checked = [False] * len(history)

    def search(i):
        entries[i] = history[i](deadline)
        checked[i] = True
        return (yield from checkSingle(model, entries[i], computeInfo, longest[i], deadline))

    searches = [search(i) for i in range(len(history))]
    ok = True
    timedOut = False
    # Go waits forever on an empty history without a timeout, and returns Unknown at the
    # timeout otherwise; here the first case returns Ok (nothing to check) and the second at once.
    if not history and deadline.at is not None:
        timedOut = True
    running = list(range(len(searches)))
    stop = False
    while running and not stop:
        still = []
        for i in running:
            if deadline.reached():
                timedOut = True  # if we time out, we might get a false positive
                stop = True
                break
            try:
                next(searches[i])
                still.append(i)
            except StopIteration as done:
                if not done.value:
                    ok = False
                    if not computeInfo:
                        stop = True
                        break
            except _TimedOut:  # while its entries were built or linked: its search never began
                entries[i] = []
                checked[i] = False
                timedOut = True
                stop = True
                break
        running = still
    for s in searches:
        s.close()
    info = LinearizationInfo()
    if computeInfo:
        partialLinearizations = []
        for lg in longest:
            # the distinct prefixes (lists made for this check alone), in order of first appearance
            seen = set()
            partials = []
            for v in lg:
                if v is not None and id(v) not in seen:
                    seen.add(id(v))
                    partials.append(v)
            partialLinearizations.append(partials)
        info.history = entries
        info.partialLinearizations = partialLinearizations
        info.checked = checked
    if not ok:
        result = Illegal
    elif timedOut:
        result = Unknown
    else:
        result = Ok
    return result, info


def _noCycleCollection(check):
    # The check allocates many objects but no reference cycles; a full cyclic collection of a
    # big test process in the middle of it could eat much of a 1 s budget, so it is paused.
    # Afterwards the collector would scan every object the check made (a million entries
    # take a quarter of a second) at the next allocation, only to find no garbage: freezing
    # and unfreezing moves them straight to the oldest generation instead, which the
    # collector visits only in its rare full collections. Skipped if the process itself
    # keeps objects frozen, which unfreeze would release.
    def run(*args):
        enabled = gc.isenabled()
        gc.disable()
        try:
            return check(*args)
        finally:
            if enabled:
                if not gc.get_freeze_count():
                    gc.freeze()
                    gc.unfreeze()
                gc.enable()

    run.__name__ = check.__name__
    run.__doc__ = check.__doc__
    return run


class _WatchedHistory(list):
    """A copy of the history whose iterator reads the deadline every _CHUNK items.

    The model's Partition function is not the checker's code, so the checker cannot read the
    clock inside it; but the function goes through the history, and a for loop (or list(),
    sorted()) over this copy takes it _CHUNK items at a time, reading the deadline between
    them and raising _TimedOut through the function once it has passed. Indexing and len()
    are the list's own and unwatched.
    """

    __slots__ = ("deadline",)

    def __init__(self, history, deadline: _Deadline):
        super().__init__(history)
        self.deadline = deadline

    def __iter__(self):
        return chain.from_iterable(piece for _, piece in _pieces(self, self.deadline))


def _partition(split, history, deadline: _Deadline):
    """split(history) (the model's Partition or PartitionEvent), or None if the deadline passed."""
    if deadline.at is None:
        return split(history)
    watched = _WatchedHistory(history, deadline)
    try:
        # A split that catches _TimedOut returns part of the history; the deadline stays
        # passed, so the next phase stops at once and the answer is still Unknown.
        return split(watched)
    except _TimedOut:
        return None
    finally:
        # a partition may be this very list (NoPartition): the next phases read it unwatched
        watched.deadline = _NO_DEADLINE


@_noCycleCollection
def checkEvents(model: Model, history: List[Event], verbose: bool, timeout: Optional[float]):
    deadline = _Deadline(timeout)
    model = fillDefault(model)
    partitions = _partition(model.PartitionEvent, history, deadline)
    if partitions is None:
        return Unknown, LinearizationInfo()
    l = [lambda d, sub=sub: convertEntries(renumber(sub, d), d) for sub in partitions]
    return checkParallel(model, l, verbose, deadline)


@_noCycleCollection
def checkOperations(model: Model, history: List[Operation], verbose: bool, timeout: Optional[float]):
    deadline = _Deadline(timeout)
    model = fillDefault(model)
    partitions = _partition(model.Partition, history, deadline)
    if partitions is None:
        return Unknown, LinearizationInfo()
    l = [lambda d, sub=sub: makeEntries(sub, d) for sub in partitions]
    return checkParallel(model, l, verbose, deadline)
