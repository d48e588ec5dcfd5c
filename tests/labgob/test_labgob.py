"""Port of labgob/test_test.go, plus checks of what the msgpack encoding keeps."""

import io
import math
from dataclasses import dataclass, field, fields, is_dataclass

import msgpack
import pytest

import labgob
import labgob.labgob


def errorCount():
    return labgob.labgob.errorCount


@dataclass
class T1:
    T1int0: int = 0
    T1int1: int = 0
    T1string0: str = ""
    T1string1: str = ""


@dataclass
class T2:
    T2slice: list = field(default_factory=list)
    T2map: dict = field(default_factory=dict)
    T2t3: object = None


@dataclass
class T3:
    T3int999: int = 0


# Go registers only T3 (the one stored in an interface); labgob needs every dataclass registered.
labgob.Register(T1)
labgob.Register(T2)


def TestGOB():
    e0 = errorCount()

    w = io.BytesIO()

    labgob.Register(T3)

    x0 = 0
    x1 = 1
    t1 = T1()
    t1.T1int1 = 1
    t1.T1string1 = "6.5840"
    t2 = T2()
    t2.T2slice = [T1(), t1]
    t2.T2map = {}
    t2.T2map[99] = T1(1, 2, "x", "y")
    t2.T2t3 = T3(999)

    e = labgob.NewEncoder(w)
    e.Encode(x0)
    e.Encode(x1)
    e.Encode(t1)
    e.Encode(t2)
    data = w.getvalue()

    r = io.BytesIO(data)
    d = labgob.NewDecoder(r)
    # Python ints cannot be filled in place, so plain values come back from Decode().
    x0 = d.Decode()
    x1 = d.Decode()
    t1 = T1()
    d.Decode(t1)
    t2 = T2()
    d.Decode(t2)

    if x0 != 0:
        pytest.fail(f"wrong x0 {x0}")
    if x1 != 1:
        pytest.fail(f"wrong x1 {x1}")
    if t1.T1int0 != 0:
        pytest.fail(f"wrong t1.T1int0 {t1.T1int0}")
    if t1.T1int1 != 1:
        pytest.fail(f"wrong t1.T1int1 {t1.T1int1}")
    if t1.T1string0 != "":
        pytest.fail(f"wrong t1.T1string0 {t1.T1string0}")
    if t1.T1string1 != "6.5840":
        pytest.fail(f"wrong t1.T1string1 {t1.T1string1}")
    if len(t2.T2slice) != 2:
        pytest.fail(f"wrong t2.T2slice len {len(t2.T2slice)}")
    if t2.T2slice[1].T1int1 != 1:
        pytest.fail("wrong slice value")
    if len(t2.T2map) != 1:
        pytest.fail(f"wrong t2.T2map len {len(t2.T2map)}")
    if t2.T2map[99].T1string1 != "y":
        pytest.fail("wrong map value")
    t3 = t2.T2t3
    if not isinstance(t3, T3):
        pytest.fail(f"wrong t2.T2t3 type {type(t3).__name__}")
    if t3.T3int999 != 999:
        pytest.fail("wrong t2.T2t3.T3int999")

    if errorCount() != e0:
        pytest.fail("there were errors, but should not have been")


# Python's twin of Go's lower-case field: a field the constructor does not take cannot round-trip.
@dataclass
class T4:
    Yes: int = 0
    no: int = field(default=0, init=False)


def TestCapital(capsys):
    e0 = errorCount()

    labgob.Register(T4)

    v = [T4(Yes=1), T4()]

    w = io.BytesIO()
    e = labgob.NewEncoder(w)
    e.Encode(v)
    e.Encode(v)
    data = w.getvalue()

    r = io.BytesIO(data)
    d = labgob.NewDecoder(r)
    d.Decode()
    d.Decode()

    if errorCount() != e0 + 1:
        pytest.fail("failed to warn about lower-case field")

    out, err = capsys.readouterr()
    printed = [line for line in (out + err).splitlines() if "T4" in line]
    if len(printed) != 1:
        pytest.fail(f"expected one warning about T4, got {printed}")


@dataclass
class DD:
    X: int = 0


labgob.Register(DD)


def TestDefault(capsys):
    e0 = errorCount()

    # send a default value...
    dd1 = DD()

    w = io.BytesIO()
    e = labgob.NewEncoder(w)
    e.Encode(dd1)
    data = w.getvalue()

    # ...into an instance that already holds a non-default value.
    reply = DD(99)

    r = io.BytesIO(data)
    d = labgob.NewDecoder(r)
    d.Decode(reply)

    if errorCount() != e0 + 1:
        pytest.fail("failed to warn about decoding into non-default value")
    # The warning prints only for the process's first labgob error, as in Go.
    err = capsys.readouterr().err
    assert err in ("", "labgob warning: Decoding into a non-default variable/field X of DD may not work\n"), err


# ---------------------------------------------------------------------------
# Checks with no Go twin: what survives a trip through labgob.


@dataclass
class Box:
    V: object = None


labgob.Register(Box)


@dataclass
class Unregistered:
    A: int = 0


@dataclass
class WithTuple:
    Pair: tuple = None


@dataclass
class WithSet:
    Members: set = None


def same(a, b):
    """Equal, and of exactly the same type all the way down."""
    if type(a) is not type(b):
        return False
    if isinstance(a, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if isinstance(a, dict):
        if len(a) != len(b) or [type(k) for k in a] != [type(k) for k in b]:
            return False
        return all(k in b and same(a[k], b[k]) for k in a)
    if is_dataclass(a):
        return all(same(getattr(a, f.name), getattr(b, f.name)) for f in fields(a))
    if isinstance(a, float) and math.isnan(a):
        return math.isnan(b)
    return a == b


ROUND_TRIP = [
    0, 1, -1, 127, 128, -32, -33, 255, 256, 65536, 2**31, -2**31 - 1,
    2**63 - 1, -2**63,
    True, False,
    "", "6.5840", "h\u00e9llo \u2713", "x" * 300,
    b"", b"\x00\xff", bytes(range(256)),
    0.0, 1.0, -2.5, 1e300, float("inf"), float("-inf"), float("nan"),
    None,
    [], [1, "a", None, 2.5, b"x", True, [], {}],
    [[[]]],
    {}, {"a": 1, 99: "b", -1: [1, 2]}, {"k": {"k2": [T1(1, 2, "3", "4")]}},
    T1(), T1(-5, 2**63 - 1, "a", "b"), T3(999),
    T2([T1(), T1(0, 1, "", "6.5840")], {99: T1(1, 2, "x", "y")}, T3(999)),
    Box(), Box(5), Box("s"), Box(True), Box(1.5), Box(b"b"), Box(T3(7)), Box([T1()]),
    Box({1: T3(1)}), Box(Box(Box(None))),
    [Box(1), Box("1"), Box(T1())],
]


@pytest.mark.parametrize("value", ROUND_TRIP, ids=lambda v: type(v).__name__)
def test_round_trip_keeps_value_and_type(value):
    e0 = errorCount()
    got = labgob.decode(labgob.encode(value))
    assert same(value, got), f"{value!r} came back as {got!r}"
    assert errorCount() == e0


def test_stream_keeps_order_and_types():
    w = io.BytesIO()
    e = labgob.NewEncoder(w)
    for v in ROUND_TRIP:
        e.Encode(v)
    d = labgob.NewDecoder(io.BytesIO(w.getvalue()))
    for v in ROUND_TRIP:
        got = d.Decode()
        assert same(v, got), f"{v!r} came back as {got!r}"
    with pytest.raises(labgob.DecodeError):
        d.Decode()


def test_decode_into_keeps_fields_whose_wire_value_is_zero():
    # gob sends no zero-valued field, so the target keeps its own value there.
    t = T1(7, 8, "p", "q")
    d = labgob.NewDecoder(io.BytesIO(labgob.encode(T1(1, 0, "", "y"))))
    assert d.Decode(t) is t
    assert t == T1(1, 8, "p", "y")


@pytest.mark.parametrize("value", [Unregistered(), [Unregistered()], {"k": Unregistered()},
                                   Box(Unregistered())], ids=["bare", "list", "dict", "field"])
def test_unregistered_dataclass_is_refused(value):
    with pytest.raises(TypeError, match="Unregistered"):
        labgob.encode(value)


@pytest.mark.parametrize("value,name", [
    ((1, 2), "tuple"), ({1, 2}, "set"), (object(), "object"),
    ([(1, 2)], "tuple"), (Box({3}), "set"), ({"k": object()}, "object"),
], ids=["tuple", "set", "object", "list-tuple", "field-set", "dict-object"])
def test_unsupported_type_is_refused(value, name):
    with pytest.raises(TypeError, match=name):
        labgob.encode(value)


# labgob reuses its msgpack packers (a stack per thread, one per nesting level): a pack that
# failed half-way, or one running in another thread, must leave nothing in the next.
def test_a_failed_encoding_leaves_nothing_in_the_next():
    good = [Box(Box("x")), {"k": Box(7)}]
    expected = labgob.encode(good)
    for bad in ([1, Box(Box({3}))], Box([Box(1), object()]), [Box(2), Unregistered()]):
        with pytest.raises(TypeError):
            labgob.encode(bad)
        assert labgob.encode(good) == expected
    assert labgob.decode(expected) == good


def test_threads_encoding_at_once_each_get_their_own_bytes():
    import threading

    values = [Box([Box(i), {"k": Box(str(i) * i)}]) for i in range(8)]
    expected = [labgob.encode(v) for v in values]
    wrong = []

    def encode_many(i):
        for _ in range(2000):
            if labgob.encode(values[i]) != expected[i]:
                wrong.append(i)
                return

    threads = [threading.Thread(target=encode_many, args=(i,)) for i in range(len(values))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not wrong


def test_a_big_value_does_not_leave_its_buffer_behind():
    # A packer's buffer never shrinks: the packers that held a big value are dropped.
    import threading

    free = labgob.labgob._free
    big = Box("x" * (labgob.labgob._KEEP_BUFFER + 1))
    kept = []

    def fresh_thread():  # whose stack of free packers starts empty
        assert labgob.decode(labgob.encode(big)) == big
        kept.append(len(getattr(free, "packers", [])))
        labgob.encode(Box(1))
        kept.append(len(free.packers))

    t = threading.Thread(target=fresh_thread)
    t.start()
    t.join()
    assert kept == [0, 2]  # Box(1): the outer packer and the one of its nested fields


@pytest.mark.parametrize("value", [2**63, -2**63 - 1, 2**64, -2**64, 10**30, [2**63], Box(2**63)],
                         ids=["2^63", "-2^63-1", "2^64", "-2^64", "10^30", "list", "field"])
def test_int_outside_int64_is_refused(value):
    with pytest.raises((TypeError, ValueError, OverflowError)):
        labgob.encode(value)


def test_tuple_and_set_fields_warn(capsys):
    e0 = errorCount()
    labgob.Register(WithTuple)
    labgob.encode(WithTuple())
    labgob.encode(WithTuple())
    assert errorCount() == e0 + 1
    labgob.Register(WithSet)
    labgob.encode(WithSet())
    assert errorCount() == e0 + 2
    assert capsys.readouterr().err.splitlines() == [
        "labgob error: field Pair of WithTuple is annotated tuple, which labgob cannot encode; "
        "in RPC or persist/snapshot it will break your Raft",
        "labgob error: field Members of WithSet is annotated set, which labgob cannot encode; "
        "in RPC or persist/snapshot it will break your Raft",
    ]


def test_corrupt_data_raises_decode_error():
    good = labgob.encode(T2([T1(1, 2, "x", "y")], {99: T1()}, T3(999)))
    assert same(labgob.decode(good), T2([T1(1, 2, "x", "y")], {99: T1()}, T3(999)))
    for bad in [b"", b"\xc1", good[:-1], good[: len(good) // 2], good[:1]]:
        with pytest.raises(labgob.DecodeError):
            labgob.decode(bad)
    with pytest.raises(labgob.DecodeError):
        labgob.NewDecoder(io.BytesIO(b"")).Decode()
    with pytest.raises(labgob.DecodeError):
        labgob.NewDecoder(io.BytesIO(good[:-1])).Decode()


# ---------------------------------------------------------------------------
# Decoding into an existing value, as gob does: zero-valued fields are not sent.


@dataclass
class VoteReply:
    Term: int = 0
    Success: bool = False


@dataclass
class Hint:
    XTerm: int = -1  # a non-zero default: a fresh Hint() is Go's Hint{}
    Name: str = ""


@dataclass
class Outer:
    Inner: Hint = field(default_factory=Hint)
    Table: dict = field(default_factory=dict)
    Items: list = field(default_factory=list)


labgob.Register(VoteReply)
labgob.Register(Hint)
labgob.Register(Outer)


def decode_into(target, value):
    d = labgob.NewDecoder(io.BytesIO(labgob.encode(value)))
    assert d.Decode(target) is target
    return target


def test_decode_into_reused_reply_keeps_stale_zero_fields(capsys):
    # Go 1.19: decoding {Term:3, Success:false} into {Term:1, Success:true} gives {3, true}.
    assert decode_into(VoteReply(1, True), VoteReply(3, False)) == VoteReply(3, True)
    # ...and warns, once per process, that the target was not a fresh value.
    capsys.readouterr()
    assert decode_into(VoteReply(), VoteReply(0, True)) == VoteReply(0, True)


def test_zero_value_is_the_field_default():
    # A field left at its default is not on the wire, whatever the default is.
    assert decode_into(Hint(7, "a"), Hint()) == Hint(7, "a")
    assert decode_into(Hint(7, "a"), Hint(0, "")) == Hint(0, "a")
    assert decode_into(Hint(), Hint(-1, "b")) == Hint(-1, "b")


def test_decode_into_fills_nested_values_as_gob_does():
    target = Outer(Hint(5, "keep"), {"a": 1, "b": 2}, [1, 2, 3])
    got = decode_into(target, Outer(Hint(9, ""), {"b": 20, "c": 30}, []))
    # a nested struct is filled field by field, a map is merged into the
    # target's map, an empty list is a zero value
    assert got == Outer(Hint(9, "keep"), {"a": 1, "b": 20, "c": 30}, [1, 2, 3])
    assert decode_into(Outer(Items=[1]), Outer(Items=[4, 5])).Items == [4, 5]


def test_decode_into_warns_about_a_reused_value(capsys):
    e0 = errorCount()
    decode_into(VoteReply(1, True), VoteReply(3, False))
    assert errorCount() == e0 + 2  # two non-default fields, as Go counts them
    capsys.readouterr()  # the warning prints only for the process's first error


# ---------------------------------------------------------------------------
# Decoding builds values the way gob does, without calling constructors.


@dataclass(kw_only=True)
class KwOnly:
    A: int = 0
    B: str = ""


@dataclass
class Counted:
    N: int = 0
    runs = 0  # class attribute, not a field

    def __post_init__(self):
        Counted.runs += 1
        self.N += 1000  # a constructor that changes its input: decoding must not redo it


@dataclass
class NoInit:
    A: int = 0
    Derived: list = field(default_factory=list, init=False)


labgob.Register(KwOnly)
labgob.Register(Counted)


def test_kw_only_dataclass_round_trips():
    assert labgob.decode(labgob.encode(KwOnly(A=3, B="x"))) == KwOnly(A=3, B="x")
    assert labgob.decode(labgob.encode([KwOnly(B="y")])) == [KwOnly(B="y")]


def test_post_init_runs_only_when_the_sender_builds_the_value():
    c = Counted(1)
    assert (c.N, Counted.runs) == (1001, 1)
    got = labgob.decode(labgob.encode(c))
    assert (got.N, Counted.runs) == (1001, 1)


def test_init_false_field_gets_its_default_on_decode(capsys):
    labgob.Register(NoInit)
    capsys.readouterr()  # the init=False warning, checked by TestCapital
    a = NoInit(5)
    a.Derived.append(1)
    b = labgob.decode(labgob.encode(a))
    c = labgob.decode(labgob.encode(a))
    assert (b.A, b.Derived, c.Derived) == (5, [], [])
    assert b.Derived is not c.Derived


def test_struct_with_wrong_field_count_is_a_decode_error():
    # A struct travels as an extension value holding [name, field values...].
    assert labgob.encode(KwOnly(A=1)) == msgpack.packb(msgpack.ExtType(1, msgpack.packb(["KwOnly", 1, ""])))
    bad = msgpack.packb(msgpack.ExtType(1, msgpack.packb(["KwOnly", 1])))
    with pytest.raises(labgob.DecodeError, match="KwOnly"):
        labgob.decode(bad)


@pytest.mark.parametrize("value", ["\ud800", ["ok", "x\udfffy"], {"\ud83d": 1}, Box("\udc80")],
                         ids=["str", "list", "dict-key", "field"])
def test_lone_surrogate_is_a_type_error(value):
    with pytest.raises(TypeError, match="not valid Unicode"):
        labgob.encode(value)
