"""The time budget of a check and of a page, phase by phase, on a fake clock: nothing here times
anything real, so the results do not depend on the machine or its load.

Each test puts a WorkClock in place of porcupine.checker._now. Its time is the work done so
far: one unit per probe, that is per field read of an operation, event or entry that the test
made, or per call of one of the model's functions. A budget of T units then runs out when the
checker has done T units of work, wherever it is, and a phase that reads the clock every few
items must stop within one piece of work after that. Each test asserts that bound for budgets
spread over the whole of its phase, so a phase, or a part of one, that stopped reading the
clock would run on past the bound and fail the test.
"""
from __future__ import annotations

import dataclasses
import io
import random
import sys
from collections import Counter

import pytest

from models import KvInput, KvModel, KvOutput
from porcupine import (
    CallEvent,
    CheckEventsVerbose,
    CheckOperationsTimeout,
    CheckOperationsVerbose,
    Event,
    Illegal,
    Model,
    Operation,
    ReturnEvent,
    Unknown,
    Visualize,
)
from porcupine import checker
from porcupine.visualization import computeVisualizationData

from .histories import APPEND, GET

CHUNK = 8  # checker._CHUNK in these tests: small histories still make many pieces
SLICE = 16  # checker._SLICE in the search's test


class WorkClock:
    """A fake clock whose time is the work done so far, in units."""

    def __init__(self):
        self.work = 0

    def __call__(self):
        return float(self.work)


_clock = WorkClock()  # the clock that the probes below advance; each test gets a fresh one


def _tick():
    _clock.work += 1


class CountedOperation(Operation):
    __slots__ = ()

    def __getattribute__(self, name):
        _tick()
        return object.__getattribute__(self, name)


class CountedEvent(Event):
    __slots__ = ()

    def __getattribute__(self, name):
        _tick()
        return object.__getattribute__(self, name)


PlainEntry = checker.entry


class CountedEntry(PlainEntry):
    __slots__ = ()

    def __getattribute__(self, name):
        _tick()
        return object.__getattribute__(self, name)


class Probe:
    """A model whose functions each do a unit of work when called; counts the calls by name."""

    def __init__(self, model):
        m = checker.fillDefault(model)
        self.calls = Counter()
        self.model = dataclasses.replace(
            m,
            Init=self._counted("Init", m.Init),
            Step=self._counted("Step", m.Step),
            DescribeOperation=self._counted("DescribeOperation", m.DescribeOperation),
            DescribeState=self._counted("DescribeState", m.DescribeState),
        )

    def _counted(self, name, f):
        def call(*args):
            self.calls[name] += 1
            _tick()
            return f(*args)

        return call


@pytest.fixture
def clock(monkeypatch):
    c = WorkClock()
    monkeypatch.setattr(sys.modules[__name__], "_clock", c)
    monkeypatch.setattr(checker, "_now", c)
    monkeypatch.setattr(checker, "_CHUNK", CHUNK)
    # the entries and renumbered events the checker makes are probes too
    monkeypatch.setattr(checker, "entry", CountedEntry)
    monkeypatch.setattr(checker, "Event", CountedEvent)
    # The share of building time kept for freeing would hide a stretch without readings
    # shorter than that share; it has its own tests below.
    monkeypatch.setattr(checker, "_TEARDOWN", 0.0)
    return c


def _budgets(total, count=40):
    """About count budgets spread over 1 .. total units."""
    return sorted({1 + (total - 1) * i // (count - 1) for i in range(count)})


def _appends(n, nkeys, cls=Operation):
    """A linearizable history: one append after another, over nkeys keys."""
    return [cls(i % 5, KvInput(APPEND, str(i % nkeys), "x"), 2 * i, KvOutput(""), 2 * i + 1) for i in range(n)]


def _appendEvents(n):
    """_appends(n, 1) as an event history of CountedEvents."""
    events = []
    for i in range(n):
        events.append(CountedEvent(i % 5, CallEvent, KvInput(APPEND, "0", "x"), i))
        events.append(CountedEvent(i % 5, ReturnEvent, KvOutput(""), i))
    return events


def _assertStoppedWithinOnePiece(clock, budget, piece):
    # it ran until the deadline, and stopped at its first reading of the clock after it
    done = clock.work
    assert budget <= done <= budget + piece, f"{done} units done with a budget of {budget} (one piece: {piece})"


def test_partitioning_stops_at_the_deadline(clock):
    # KvModel's Partition reads one field (Input) of each operation: a unit each
    ops = _appends(60 * CHUNK, 3, CountedOperation)
    probe = Probe(KvModel)
    for budget in _budgets(len(ops) - CHUNK):
        clock.work = 0
        probe.calls.clear()
        res, info = CheckOperationsVerbose(probe.model, ops, budget)
        assert res == Unknown
        assert info.history == [] and not probe.calls, "the check went on past partitioning"
        _assertStoppedWithinOnePiece(clock, budget, CHUNK)


def test_a_partition_function_that_swallows_the_timeout_still_gives_unknown(clock):
    # it returns what it read before the deadline: a part of the history, which says nothing
    seen = []

    def partition(history):
        try:
            for op in history:
                if op.Input.Op == APPEND:  # a unit of work each
                    seen.append(op)
        except Exception:
            pass
        return [seen]

    probe = Probe(dataclasses.replace(KvModel, Partition=partition))
    ops = _appends(60 * CHUNK, 1, CountedOperation)
    assert CheckOperationsTimeout(probe.model, ops, 10 * CHUNK) == Unknown
    assert 0 < len(seen) < len(ops), "the deadline did not pass while partitioning"
    assert not probe.calls


@pytest.mark.parametrize("history", ["operations", "events"])
def test_building_entries_stops_at_the_deadline(clock, history):
    # One partition (the model has no Partition function, so nothing reads the history before
    # its entries are built) of 480 operations: 960 entries, more than the 16 * CHUNK that
    # _sortByTime sorts in one step, so they go through its buckets too.
    n = 60 * CHUNK
    probe = Probe(Model(Init=KvModel.Init, Step=KvModel.Step))
    if history == "operations":
        ops = _appends(n, 1, CountedOperation)
        check = CheckOperationsVerbose
    else:
        ops = _appendEvents(n)
        check = CheckEventsVerbose
    # the work of building: all the work before the search's first call of Init
    clock.work = 0
    res, _ = check(probe.model, ops, 0)
    assert res == "Ok"
    building = clock.work - probe.calls["Init"] - probe.calls["Step"]
    # the largest piece of work between two readings of the clock: a bucket of _sortByTime
    # (about 8 * CHUNK entries here, one read each); the other pieces read 3 or 4 fields of
    # CHUNK items
    piece = 16 * CHUNK
    for budget in _budgets(building - piece):
        clock.work = 0
        probe.calls.clear()
        res, info = check(probe.model, ops, budget)
        assert res == Unknown
        assert not probe.calls, "the search began: the deadline was not seen while building"
        assert info.history == [[]] and info.checked == [False]
        _assertStoppedWithinOnePiece(clock, budget, piece)


def _pathological(n=7):
    # n concurrent appends that every order may explain, then a read that no order explains:
    # the search tries every order (the states differ, so the cache does not cut it short),
    # about 14,000 steps for 7 appends, then answers Illegal
    ops = [Operation(i, KvInput(APPEND, "k", chr(ord("a") + i)), i, KvOutput(""), 1000) for i in range(n)]
    ops.append(Operation(n, KvInput(GET, "k", ""), 2000, KvOutput("#"), 2001))
    return ops


def test_search_stops_at_the_deadline(clock, monkeypatch):
    monkeypatch.setattr(checker, "_SLICE", SLICE)
    # plain operations and entries: building does no work on this clock, all of it is the search's
    monkeypatch.setattr(checker, "entry", PlainEntry)
    probe = Probe(KvModel)
    ops = _pathological()
    clock.work = 0
    assert CheckOperationsTimeout(probe.model, ops, 0) == Illegal  # the whole search, for its length
    whole = probe.calls["Step"]
    for verbose in (False, True):
        for budget in _budgets(whole - SLICE, 12):
            clock.work = 0
            probe.calls.clear()
            if verbose:
                res, info = CheckOperationsVerbose(probe.model, ops, budget)
                if budget > 2 * len(ops):  # time to stack every append, then fail the read
                    assert max(map(len, info.partialLinearizations[0])) == len(ops) - 1
            else:
                res = CheckOperationsTimeout(probe.model, ops, budget)
            assert res == Unknown
            # a slice of the search runs at most SLICE steps between two readings of the clock
            _assertStoppedWithinOnePiece(clock, budget, SLICE)


def test_illegal_partition_wins_over_slow_one(clock):
    # Partition "a" would search for long, partition "b" is plainly illegal: Illegal, as with
    # Go's goroutine per partition, not Unknown. The searches take turns a slice at a time,
    # so "a" has done at most one slice when "b" answers.
    probe = Probe(KvModel)
    ops = _pathological(12) + [
        Operation(0, KvInput(1, "b", "1"), 0, KvOutput(""), 10),
        Operation(1, KvInput(GET, "b", ""), 20, KvOutput("2"), 30),
    ]
    assert CheckOperationsTimeout(probe.model, ops, 0) == Illegal
    assert probe.calls["Step"] <= checker._SLICE + 2
    res, info = CheckOperationsVerbose(probe.model, ops, 5000)
    assert res == Illegal and len(info.partialLinearizations) == 2


def _staleReads(nkeys, n):
    """nkeys partitions of n sequential operations, each ending with a read of an older value."""
    ops = []
    t = 0
    for k in range(nkeys):
        for i in range(n):
            ops.append(Operation(i % 3, KvInput(APPEND, str(k), f"{i} "), t, KvOutput(""), t + 1))
            t += 2
        ops.append(Operation(3, KvInput(GET, str(k), ""), t, KvOutput("0 "), t + 1))
        t += 2
    return ops


def test_page_stops_at_the_deadline(clock):
    # 100 operations a partition: more on the page than in one piece of work
    res, info = CheckOperationsVerbose(KvModel, _staleReads(6, 100), 0)
    assert res == Illegal
    probe = Probe(KvModel)
    clock.work = 0
    full = computeVisualizationData(probe.model, info)
    assert len(full) == 6
    total = clock.work
    # the largest piece of work between two readings: CHUNK entries, up to 6 field reads each
    piece = 6 * CHUNK
    for budget in _budgets(total - piece):
        clock.work = 0
        data = computeVisualizationData(probe.model, info, budget)
        # whole partitions, in order, then none: a partition cut short is left out
        assert data == full[: len(data)] and len(data) < len(full)
        _assertStoppedWithinOnePiece(clock, budget, piece)
        page = io.StringIO()
        clock.work = 0
        Visualize(probe.model, info, page, budget)
        late = len(full) - len(data)
        assert f"{late} partitions are not drawn: the time given to draw the page ran out" in page.getvalue()


def test_a_check_keeps_a_share_of_its_building_time_for_freeing(monkeypatch):
    # A check cut short frees what its building loops made before it returns; its deadline
    # comes earlier by a share of the time spent in them, and only in them.
    now = [0.0]
    monkeypatch.setattr(checker, "_now", lambda: now[0])
    share = checker._TEARDOWN
    assert 0 < share < 1
    moved = 10 / (1 + share)  # where a check that only builds meets its deadline of 10

    now[0] = 0.0
    d = checker._Deadline(10.0)
    now[0] = moved - 0.01
    assert not d.reached(building=True)
    now[0] = moved + 0.01
    assert d.reached(building=True)

    now[0] = 0.0
    d = checker._Deadline(10.0)
    now[0] = 9.99  # searching, not building: the whole budget
    assert not d.reached()
    now[0] = 10.0
    assert d.reached()

    # the page's deadline keeps nothing back
    now[0] = 0.0
    d = checker._Deadline(10.0, teardown=0.0)
    now[0] = 9.99
    assert not d.reached(building=True)


def test_a_check_cut_while_building_stops_early_by_the_share(clock, monkeypatch):
    # The building loops report their time: with half of it kept for freeing, a check that
    # only builds stops at about two thirds of its budget (less the last piece of each loop,
    # which is not counted).
    monkeypatch.setattr(checker, "_TEARDOWN", 0.5)
    probe = Probe(Model(Init=KvModel.Init, Step=KvModel.Step))
    ops = _appends(60 * CHUNK, 1, CountedOperation)
    for budget in (2000, 4000, 6000):
        clock.work = 0
        res, _ = CheckOperationsVerbose(probe.model, ops, budget)
        assert res == Unknown and not probe.calls
        assert budget / 1.5 <= clock.work < 0.8 * budget


def test_sorting_in_buckets_gives_the_stable_sort(monkeypatch):
    # _sortByTime deals a long list into buckets by time; it must order it exactly as one
    # stable sort would, equal times (a call and a return, many calls) included
    monkeypatch.setattr(checker, "_CHUNK", CHUNK)
    rng = random.Random(3)
    sizes = [1, 16 * CHUNK, 16 * CHUNK + 1, 50 * CHUNK + 7, 400 * CHUNK]
    for n in sizes:
        for spread in (1, 3, 5 * n, 10**12):  # all equal, many equal, few equal, none equal
            entries = [PlainEntry(bool(rng.getrandbits(1)), None, i, rng.randrange(spread), 0) for i in range(n)]
            want = sorted(entries, key=lambda e: e.time)
            checker._sortByTime(entries, checker._NO_DEADLINE)
            assert [e.id for e in entries] == [e.id for e in want], (n, spread)
