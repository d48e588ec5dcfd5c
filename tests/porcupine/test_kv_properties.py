"""Property tests on random key/value histories (fixed seeds, stdlib random only)."""
from __future__ import annotations

import random

from .histories import APPEND, GET, PUT, random_kv_history
from .reference import brute_force_linearizable, ref_checkSingle

from models import KvInput, KvModel, KvOutput
from porcupine import (
    CallEvent,
    CheckEvents,
    CheckOperations,
    CheckOperationsTimeout,
    CheckOperationsVerbose,
    Event,
    Illegal,
    Ok,
    ReturnEvent,
)
from porcupine import checker
from porcupine.checker import checkSingle, fillDefault, makeEntries
from porcupine.visualization import computeVisualizationData

NEVER = "#never#"  # no written value contains "#", so no state can


def _run(model, entries, verbose):
    longest = [None] * (len(entries) // 2)
    search = checkSingle(model, entries, verbose, longest)
    try:
        while True:
            next(search)
    except StopIteration as done:
        return done.value, longest


def _histories(seed, count, **kw):
    rng = random.Random(seed)
    for _ in range(count):
        params = dict(
            nclients=rng.randint(1, 8),
            nops=rng.randint(1, 120),
            shared=rng.choice([0.0, 0.1, 0.5]),
            max_dur=rng.choice([20, 100, 300]),
        )
        params.update(kw)
        yield rng, random_kv_history(rng, **params)[0]


def test_random_legal_histories_are_ok():
    for _, ops in _histories(1, 150):
        assert CheckOperations(KvModel, ops)
        res, info = CheckOperationsVerbose(KvModel, ops, 0)
        assert res == Ok
        # every partition's linearization is complete
        for entries, partials in zip(info.history, info.partialLinearizations):
            assert [sorted(p) for p in partials] == [list(range(len(entries) // 2))]


def test_read_of_never_written_value_is_illegal():
    for rng, ops in _histories(2, 150):
        gets = [op for op in ops if op.Input.Op == GET]
        if not gets:
            continue
        rng.choice(gets).Output = KvOutput(rng.choice([NEVER, "x 0 0 y" + NEVER]))
        assert not CheckOperations(KvModel, ops)
        res, info = CheckOperationsVerbose(KvModel, ops, 0)
        assert res == Illegal
        computeVisualizationData(KvModel, info)  # partial linearizations replay without error


def _states_by_op(ops):
    """For a history whose keys are each used by one client only: the state after each op."""
    store = {}
    after = []
    for op in ops:  # ops of one key are sequential and random_kv_history lists them in order
        inp = op.Input
        cur = store.get(inp.Key, "")
        if inp.Op == PUT:
            cur = inp.Value
        elif inp.Op == APPEND:
            cur = cur + inp.Value
        store[inp.Key] = cur
        after.append(cur)
    return after


def test_stale_read_is_illegal():
    tried = 0
    for rng, ops in _histories(3, 200, shared=0.0):
        after = _states_by_op(ops)
        candidates = []
        for i, op in enumerate(ops):
            if op.Input.Op != GET:
                continue
            older = {after[j] for j in range(i) if ops[j].Input.Key == op.Input.Key} | {""}
            older.discard(op.Output.Value)
            if older:
                candidates.append((i, sorted(older)))
        if not candidates:
            continue
        i, older = rng.choice(candidates)
        ops[i].Output = KvOutput(rng.choice(older))
        tried += 1
        assert CheckOperationsTimeout(KvModel, ops, 0) == Illegal
    assert tried > 50


def test_lost_append_is_illegal():
    tried = 0
    for rng, ops in _histories(4, 200, shared=0.0):
        candidates = []
        for i, op in enumerate(ops):
            if op.Input.Op != GET:
                continue
            # the last append to this key before the read, if no put came after it
            for j in range(i - 1, -1, -1):
                if ops[j].Input.Key == op.Input.Key and ops[j].Input.Op != GET:
                    if ops[j].Input.Op == APPEND:
                        candidates.append((i, ops[j].Input.Value))
                    break
        if not candidates:
            continue
        i, lost = rng.choice(candidates)
        v = ops[i].Output.Value
        cut = v.rindex(lost)
        ops[i].Output = KvOutput(v[:cut] + v[cut + len(lost):])
        tried += 1
        assert not CheckOperations(KvModel, ops)
    assert tried > 50


def _small_random_history(rng):
    """A tiny history with random (often wrong) outputs, on one or two keys."""
    n = rng.randint(1, 7)
    ops, _ = random_kv_history(rng, nclients=rng.randint(1, 4), nops=n, shared=1.0, nkeys=rng.randint(1, 2), max_dur=60)
    values = [op.Input.Value for op in ops if op.Input.Op != GET]
    for op in ops:
        if op.Input.Op == GET and rng.random() < 0.5:
            parts = rng.sample(values, min(len(values), rng.randint(0, 2)))
            op.Output = KvOutput("".join(parts))
    return ops


def test_agrees_with_brute_force():
    rng = random.Random(5)
    verdicts = {True: 0, False: 0}
    for _ in range(600):
        ops = _small_random_history(rng)
        expected = brute_force_linearizable(ops)
        verdicts[expected] += 1
        assert CheckOperations(KvModel, ops) == expected, ops
        assert (CheckOperationsVerbose(KvModel, ops, 0)[0] == Ok) == expected
    assert min(verdicts.values()) > 100, verdicts


def test_partial_linearizations_match_go_algorithm():
    # the fast search gives the same verdicts and the same longest prefix per operation as a
    # step-by-step transcription of Go's checkSingle (eager scan of the stack)
    model = fillDefault(KvModel)
    rng = random.Random(6)
    illegal = 0
    for _ in range(300):
        ops, _ = random_kv_history(rng, nclients=rng.randint(1, 5), nops=rng.randint(1, 40), shared=0.8, nkeys=2, max_dur=rng.choice([10, 100, 300]))
        for op in ops:
            if op.Input.Op == GET and rng.random() < 0.2:
                op.Output = KvOutput(rng.choice(["", NEVER, op.Output.Value]))
        for part in model.Partition(ops):
            entries = makeEntries(part)
            ok, longest = _run(model, entries, True)
            refOk, refLongest = ref_checkSingle(model, entries, True)
            assert (ok, longest) == (refOk, refLongest)
            illegal += not ok
    assert illegal > 30


def test_partial_linearizations_when_stopped(monkeypatch):
    # stopping the search early (timeout) leaves the same records as stopping Go's search
    # after as many steps
    model = fillDefault(KvModel)
    rng = random.Random(7)
    for slice_ in (3, 17, 50):
        monkeypatch.setattr(checker, "_SLICE", slice_)
        for _ in range(60):
            ops, _ = random_kv_history(rng, nclients=4, nops=rng.randint(5, 40), shared=1.0, nkeys=1, max_dur=200)
            entries = makeEntries(ops)
            longest = [None] * len(ops)
            search = checkSingle(model, entries, True, longest)
            try:
                next(search)  # runs slice_ - 1 steps, then yields
            except StopIteration:
                continue
            search.close()
            _, refLongest = ref_checkSingle(model, entries, True, max_steps=slice_ - 1)
            assert longest == refLongest


def _events(ops):
    """The event history of ops: calls and returns by time, a call first on ties."""
    marks = []
    for i, op in enumerate(ops):
        marks.append((op.Call, 0, i))
        marks.append((op.Return, 1, i))
    marks.sort()
    out = []
    for _, kind, i in marks:
        op = ops[i]
        if kind == 0:
            out.append(Event(op.ClientId, CallEvent, op.Input, 1000 + 7 * i))
        else:
            out.append(Event(op.ClientId, ReturnEvent, op.Output, 1000 + 7 * i))
    return out


def test_events_agree_with_operations():
    # KvModel has no PartitionEvent, so use one key
    rng = random.Random(8)
    verdicts = {True: 0, False: 0}
    for _ in range(200):
        ops, _ = random_kv_history(rng, nclients=rng.randint(1, 5), nops=rng.randint(1, 30), shared=1.0, nkeys=1, max_dur=100)
        if rng.random() < 0.5:
            gets = [op for op in ops if op.Input.Op == GET]
            if gets:
                rng.choice(gets).Output = KvOutput(NEVER)
        expected = CheckOperations(KvModel, ops)
        verdicts[expected] += 1
        assert CheckEvents(KvModel, _events(ops)) == expected
    assert min(verdicts.values()) > 30, verdicts


def test_kv_input_fields():
    i = KvInput(2, "k", "v")
    assert (i.Op, i.Key, i.Value) == (2, "k", "v") and KvOutput("x").Value == "x"
    assert KvInput() == KvInput(0, "", "") and KvOutput() == KvOutput("")
