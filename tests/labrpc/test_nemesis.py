"""labrpc's test hooks (labrpc/nemesis.py): the observer and the DuplicateLate nemesis."""

import threading
from dataclasses import dataclass

import pytest

import labgob
from labrpc import MakeNetwork, MakeServer, MakeService


@labgob.Register
@dataclass
class AddArgs:
    X: int = 0


@labgob.Register
@dataclass
class AddReply:
    Sum: int = 0


class Adder:
    """Sums what it is sent: a request delivered twice counts twice."""

    def __init__(self):
        self.mu = threading.Lock()
        self.sum = 0
        self.calls = 0

    def Add(self, args, reply):
        with self.mu:
            self.sum += args.X
            self.calls += 1
            reply.Sum = self.sum


def network():
    net = MakeNetwork()
    adder = Adder()
    srv = MakeServer()
    srv.AddService(MakeService(adder))
    net.AddServer("s", srv)
    end = net.MakeEnd("e")
    net.Connect("e", "s")
    net.Enable("e", True)
    return net, end, adder


def test_observer_sees_requests_and_replies_in_order():
    net, end, _ = network()
    events = []
    net.Observe(events.append)
    try:
        for x in (1, 2):
            assert end.Call("Adder.Add", AddArgs(x), AddReply())
        net.Observe(None)
        assert end.Call("Adder.Add", AddArgs(5), AddReply())
    finally:
        net.Cleanup()
    assert [(e.kind, e.number, e.args.X) for e in events] == [
        ("request", 0, 1), ("reply", 1, 1), ("request", 0, 2), ("reply", 2, 2)]
    assert all(e.endname == "e" and e.servername == "s" and e.svcMeth == "Adder.Add" for e in events)
    assert events[1].reply.Sum == 1 and events[1].size == len(labgob.encode(AddArgs(1)))


def test_duplicate_late_redelivers_earlier_requests_and_drops_their_replies():
    net, end, adder = network()
    events = []
    net.Observe(events.append)
    net.DuplicateLate(True)
    try:
        replies = []
        for x in (1, 10, 100, 1000):
            reply = AddReply()
            assert end.Call("Adder.Add", AddArgs(x), reply)
            replies.append(reply.Sum)
    finally:
        net.Cleanup()
    dups = [e for e in events if e.kind == "duplicate"]
    assert len(dups) == 3  # after every reply but the first, one kept request again
    for e in dups:
        original = next(r for r in events if r.kind == "reply" and r.number == e.number)
        assert e.args.X == original.args.X  # a copy of an earlier request, with its number
    assert adder.calls == 7 and adder.sum == 1111 + sum(e.args.X for e in dups)
    # the caller saw only its own requests' replies, each after the copies before it
    assert replies[0] == 1 and all(b > a for a, b in zip(replies, replies[1:])), replies


def test_duplicate_late_off_delivers_once():
    net, end, adder = network()
    net.DuplicateLate(True)
    net.DuplicateLate(False)
    try:
        for x in (1, 2, 3):
            assert end.Call("Adder.Add", AddArgs(x), AddReply())
    finally:
        net.Cleanup()
    assert adder.calls == 3


def test_observer_must_be_callable():
    net = MakeNetwork()
    try:
        with pytest.raises(TypeError, match="Observe: expected a callable or None"):
            net.Observe(42)
    finally:
        net.Cleanup()
