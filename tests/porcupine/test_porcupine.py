"""Hand-made histories with known verdicts, the API surface, timeouts."""
from __future__ import annotations

from dataclasses import dataclass

import pytest

import porcupine
from models import KvInput, KvModel, KvOutput
from porcupine import (
    CallEvent,
    CheckEvents,
    CheckEventsTimeout,
    CheckEventsVerbose,
    CheckOperations,
    CheckOperationsTimeout,
    CheckOperationsVerbose,
    CheckResult,
    Event,
    Illegal,
    Model,
    Ok,
    Operation,
    ReturnEvent,
    Unknown,
)
from porcupine import bitset
from porcupine.checker import fillDefault, makeEntries


# A register whose reads and writes carry integers, as in the porcupine README.
@dataclass
class registerInput:
    op: bool  # False = write, True = read
    value: int


def _registerStep(state, input, output):
    if not input.op:
        return True, input.value
    return output == state, state


registerModel = Model(Init=lambda: 0, Step=_registerStep)


def get(cli, key, out, call, ret):
    return Operation(cli, KvInput(0, key, ""), call, KvOutput(out), ret)


def put(cli, key, value, call, ret):
    return Operation(cli, KvInput(1, key, value), call, KvOutput(""), ret)


def append(cli, key, value, call, ret):
    return Operation(cli, KvInput(2, key, value), call, KvOutput(""), ret)


def test_register_operations_ok():
    ops = [
        Operation(0, registerInput(False, 100), 0, 0, 100),
        Operation(1, registerInput(True, 0), 25, 100, 75),
        Operation(2, registerInput(True, 0), 30, 0, 60),
    ]
    assert CheckOperations(registerModel, ops)
    assert CheckOperationsTimeout(registerModel, ops, 0) == Ok


def test_register_operations_illegal():
    # the read at 10..30 sees the write, the later read at 40..90 does not
    ops = [
        Operation(0, registerInput(False, 200), 0, 0, 100),
        Operation(1, registerInput(True, 0), 10, 200, 30),
        Operation(2, registerInput(True, 0), 40, 0, 90),
    ]
    assert not CheckOperations(registerModel, ops)
    assert CheckOperationsTimeout(registerModel, ops, 1.0) == Illegal


def test_register_events_ok():
    events = [
        Event(0, CallEvent, registerInput(False, 100), 0),
        Event(1, CallEvent, registerInput(True, 0), 1),
        Event(2, CallEvent, registerInput(True, 0), 2),
        Event(2, ReturnEvent, 0, 2),
        Event(1, ReturnEvent, 100, 1),
        Event(0, ReturnEvent, 0, 0),
    ]
    assert CheckEvents(registerModel, events)
    assert CheckEventsTimeout(registerModel, events, 0) == Ok


def test_register_events_illegal():
    events = [
        Event(0, CallEvent, registerInput(False, 200), 0),
        Event(1, CallEvent, registerInput(True, 0), 1),
        Event(1, ReturnEvent, 200, 1),
        Event(2, CallEvent, registerInput(True, 0), 2),
        Event(2, ReturnEvent, 0, 2),
        Event(0, ReturnEvent, 0, 0),
    ]
    assert not CheckEvents(registerModel, events)
    res, info = CheckEventsVerbose(registerModel, events, 1.0)
    assert res == Illegal
    assert len(info.history) == 1 and len(info.history[0]) == 6


def test_event_ids_are_renumbered():
    # arbitrary ids, first seen in the order 70, 9, 123
    events = [
        Event(0, CallEvent, registerInput(False, 5), 70),
        Event(1, CallEvent, registerInput(True, 0), 9),
        Event(0, ReturnEvent, 0, 70),
        Event(2, CallEvent, registerInput(True, 0), 123),
        Event(1, ReturnEvent, 5, 9),
        Event(2, ReturnEvent, 5, 123),
    ]
    res, info = CheckEventsVerbose(registerModel, events, 0)
    assert res == Ok
    assert sorted({e.id for e in info.history[0]}) == [0, 1, 2]
    assert info.partialLinearizations == [[[0, 1, 2]]]
    events[-1] = Event(2, ReturnEvent, 0, 123)  # read after a completed write sees the old value
    assert not CheckEvents(registerModel, events)


def test_kv_sequential_ok():
    ops = [
        put(0, "k", "a", 0, 10),
        get(0, "k", "a", 20, 30),
        append(0, "k", "b", 40, 50),
        get(0, "k", "ab", 60, 70),
        put(0, "k", "", 80, 90),
        get(0, "k", "", 100, 110),
    ]
    assert CheckOperations(KvModel, ops)


def test_kv_stale_read():
    ops = [
        put(0, "k", "1", 0, 10),
        put(0, "k", "2", 20, 30),
        get(1, "k", "1", 40, 50),
    ]
    assert CheckOperationsTimeout(KvModel, ops, 1.0) == Illegal


def test_kv_lost_write():
    ops = [
        append(0, "k", "a", 0, 10),
        append(1, "k", "b", 20, 30),
        get(2, "k", "b", 40, 50),
    ]
    assert not CheckOperations(KvModel, ops)
    ops[-1] = get(2, "k", "ab", 40, 50)
    assert CheckOperations(KvModel, ops)


def test_kv_read_of_never_written_value():
    ops = [put(0, "k", "a", 0, 10), get(1, "k", "zzz", 5, 15)]
    assert not CheckOperations(KvModel, ops)
    assert not CheckOperations(KvModel, [get(0, "fresh", "x", 0, 1)])
    assert CheckOperations(KvModel, [get(0, "fresh", "", 0, 1)])


def test_kv_overlapping_can_be_ordered():
    # both reads overlap the put, one sees it and one does not: put falls between them
    ops = [
        put(0, "k", "1", 0, 100),
        get(1, "k", "", 10, 20),
        get(2, "k", "1", 30, 40),
    ]
    assert CheckOperations(KvModel, ops)
    # concurrent appends may take effect in either order
    for seen in ("ab", "ba"):
        ops = [
            append(0, "k", "a", 0, 10),
            append(1, "k", "b", 5, 15),
            get(2, "k", seen, 20, 30),
        ]
        assert CheckOperations(KvModel, ops), seen
    # a read overlapping a write may see either value
    assert CheckOperations(KvModel, [put(0, "k", "v", 0, 10), get(1, "k", "v", 5, 6)])
    assert CheckOperations(KvModel, [put(0, "k", "v", 0, 10), get(1, "k", "", 5, 6)])


def test_kv_overlapping_cannot_be_ordered():
    # both reads overlap the put, but the one that saw it finished before the other began
    ops = [
        put(0, "k", "1", 0, 100),
        get(1, "k", "1", 10, 20),
        get(2, "k", "", 30, 40),
    ]
    assert not CheckOperations(KvModel, ops)
    # concurrent appends, but the reader sees only one of them after both completed
    ops = [
        append(0, "k", "a", 0, 10),
        append(1, "k", "b", 5, 15),
        get(2, "k", "a", 20, 30),
    ]
    assert not CheckOperations(KvModel, ops)


def test_same_time_call_and_return_are_concurrent():
    # calls sort before returns at equal times, so touching operations overlap
    ops = [put(0, "k", "1", 0, 10), get(1, "k", "", 10, 20)]
    assert CheckOperations(KvModel, ops)
    ops = [put(0, "k", "1", 0, 10), get(1, "k", "", 11, 20)]
    assert not CheckOperations(KvModel, ops)
    entries = makeEntries(ops[:1] + [get(1, "k", "", 10, 20)])
    assert [(e.time, e.kind) for e in entries] == [(0, False), (10, False), (10, True), (20, True)]


def test_kv_partition_by_sorted_key():
    ops = [put(0, "b", "1", 0, 1), put(1, "a", "2", 0, 1), get(0, "b", "1", 2, 3), put(2, "c", "", 5, 6)]
    parts = KvModel.Partition(ops)
    assert [[op.Input.Key for op in p] for p in parts] == [["a"], ["b", "b"], ["c"]]
    assert parts[1] == [ops[0], ops[2]]
    # keys are independent: a value of one key says nothing about another
    ops = [put(0, "a", "1", 0, 10), get(1, "b", "", 20, 30), get(1, "a", "1", 40, 50)]
    assert CheckOperations(KvModel, ops)


def test_kv_describe_operation():
    d = KvModel.DescribeOperation
    assert d(KvInput(0, "k", ""), KvOutput("v")) == "get('k') -> 'v'"
    assert d(KvInput(1, "k", "v"), KvOutput("")) == "put('k', 'v')"
    assert d(KvInput(2, "k", "v"), KvOutput("")) == "append('k', 'v')"
    assert d(KvInput(7, "k", "v"), KvOutput("")) == "<invalid>"
    assert KvModel.Init() == ""
    assert KvModel.Step("ab", KvInput(2, "k", "c"), KvOutput("")) == (True, "abc")
    assert KvModel.Step("ab", KvInput(1, "k", "c"), KvOutput("")) == (True, "c")
    assert KvModel.Step("ab", KvInput(0, "k", ""), KvOutput("ab")) == (True, "ab")
    assert KvModel.Step("ab", KvInput(0, "k", ""), KvOutput("a"))[0] is False


def test_fill_default():
    m = Model(Init=lambda: 0, Step=_registerStep)
    f = fillDefault(m)
    assert m.Partition is None and m.Equal is None  # the caller's model is left alone
    assert f.Partition is porcupine.NoPartition
    assert f.PartitionEvent is porcupine.NoPartitionEvent
    assert f.Equal is porcupine.ShallowEqual
    assert f.DescribeOperation(registerInput(True, 3), 4) == "{true 3} -> 4"
    assert f.DescribeState(None) == "<nil>"
    assert porcupine.DefaultDescribeOperation(KvInput(0, "k", ""), KvOutput("v")) == "{0 k } -> {v}"
    assert porcupine.DefaultDescribeState([1, "a"]) == "[1 a]"
    assert fillDefault(KvModel).DescribeState("xy") == "xy"


def test_check_result_values():
    assert (Ok, Illegal, Unknown) == ("Ok", "Illegal", "Unknown")
    assert CheckResult.Ok is Ok and isinstance(Illegal, CheckResult)
    assert porcupine.CallEvent is False and porcupine.ReturnEvent is True


def test_custom_equal_and_unhashable_states():
    # states are lists (unhashable), compared by a custom Equal; and by == without one
    def step(state, input, output):
        if input[0] == "add":
            return True, sorted(state + [input[1]])
        return output == state, state

    for equal in (None, lambda a, b: a == b):
        m = Model(Init=lambda: [], Step=step, Equal=equal)
        ops = [
            Operation(0, ("add", 1), 0, None, 10),
            Operation(1, ("add", 2), 0, None, 10),
            Operation(2, ("read",), 20, [1, 2], 30),
        ]
        assert CheckOperations(m, ops)
        ops[2] = Operation(2, ("read",), 20, [1], 30)
        assert not CheckOperations(m, ops)


def test_malformed_history_raises():
    import pytest

    with pytest.raises(ValueError):
        CheckOperations(KvModel, [put(0, "k", "1", 10, 5)])
    with pytest.raises(ValueError):
        CheckEvents(registerModel, [Event(0, CallEvent, registerInput(True, 0), 0)])


def test_empty_history():
    assert CheckOperations(KvModel, [])
    assert CheckOperationsTimeout(KvModel, [], 0.05) == Unknown  # as in Go: no partition reports
    assert CheckOperationsTimeout(registerModel, [], 0) == Ok  # one empty partition
    res, info = CheckOperationsVerbose(registerModel, [], 0)
    assert res == Ok and info.partialLinearizations == [[]]


def _pathological(key="k", n=12, call=0):
    # n concurrent appends that every order may explain, then a read no order explains:
    # the search has to try all orders (states differ, so the cache does not help)
    ops = [append(i, key, chr(ord("a") + i), call + i, call + 1000) for i in range(n)]
    ops.append(get(n, key, "#", call + 2000, call + 2001))
    return ops


@pytest.mark.realtime  # the checker's budget is real time, under --sim too
def test_timeout_gives_unknown():
    # the search of this history takes minutes: any real budget of a fraction of a second
    # ends it with Unknown (where the search stops is test_budget.py's, on a fake clock)
    ops = _pathological()
    res, info = CheckOperationsVerbose(KvModel, ops, 0.2)
    assert res == Unknown
    assert len(info.partialLinearizations) == 1 and info.partialLinearizations[0]
    assert max(map(len, info.partialLinearizations[0])) == 12
    assert CheckOperationsTimeout(KvModel, ops, 0.2) == Unknown


def test_bitset_helpers():
    b = bitset.newBitset(100)
    b = bitset.set(b, 3)
    b = bitset.set(b, 70)
    assert bitset.get(b, 70) and bitset.get(b, 3) and not bitset.get(b, 4)
    assert bitset.popcnt(b) == 2
    c = bitset.clear(b, 70)
    assert not bitset.get(c, 70) and bitset.get(b, 70)
    assert bitset.equals(c, bitset.set(0, 3)) and bitset.hash(c) == bitset.hash(8)
