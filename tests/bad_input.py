"""What the bad-input tests of kvraft, shardctrler and shardkv share
(tests/*/test_bad_input.py): ends a hand-made client would call through, the
checks that clerks and servers refuse ill-typed requests, and catching the
appliers that fail on an entry put in the log past those checks.
"""

import queue
import re
import secrets
import threading
import time

import pytest

# How long the appliers get to fail on a bad entry once it is in the log (real
# seconds, or virtual ones under --sim); they fail within a few heartbeats.
APPLY_WAIT = 10.0


class CountingEnd:
    """An end that counts the calls made through it."""

    def __init__(self, end):
        self.end = end
        self.calls = 0

    def Call(self, svcMeth, args, reply):
        self.calls += 1
        return self.end.Call(svcMeth, args, reply)


def raw_end(net, server):
    """A new end to a server (its name in net): what a hand-made client would call through."""
    name = secrets.token_urlsafe(15)
    end = net.MakeEnd(name)
    net.Connect(name, server)
    net.Enable(name, True)
    return end


def raw_ends(net, servers):
    return [raw_end(net, server) for server in servers]


def check_kv_serves(ck):
    """Put, Append and Get work (the clerk of kvraft or shardkv)."""
    ck.Put("k", "v")
    assert ck.Get("k") == "v"
    ck.Append("k", "w")
    assert ck.Get("k") == "vw"


def check_kv_clerk_refuses(ck, ends):
    """The clerk of kvraft or shardkv, whose ends are all in ends (CountingEnds),
    refuses ill-typed arguments without sending anything, then serves."""
    cases = [
        (lambda: ck.Put(123, "v"), TypeError, "Put: key must be str, not int (123)"),
        (lambda: ck.Put(None, "v"), TypeError, "Put: key must be str, not NoneType (None)"),
        (lambda: ck.Put("k", 5), TypeError, "Put: value must be str, not int (5)"),
        (lambda: ck.Append("k", b"v"), TypeError, "Append: value must be str, not bytes (b'v')"),
        (lambda: ck.Append("k", None), TypeError, "Append: value must be str, not NoneType (None)"),
        (lambda: ck.Get(123), TypeError, "Get: key must be str, not int (123)"),
        (lambda: ck.Get(b"k"), TypeError, "Get: key must be str, not bytes (b'k')"),
        (lambda: ck.PutAppend("k", "v", "Delete"), ValueError, 'op must be "Put" or "Append", not str'),
    ]
    check_clerk_refuses(cases, ends, lambda: check_kv_serves(ck))


def check_clerk_refuses(cases, ends, check_serves):
    """Each (call, exception type, message) in cases raises, without sending anything
    through ends; the clerk then still serves, through them."""
    for call, exc, message in cases:
        with pytest.raises(exc, match=re.escape(message)):
            call()
    assert [end.calls for end in ends] == [0] * len(ends), "the clerk sent an ill-typed request"

    check_serves()
    assert sum(end.calls for end in ends) > 0


def check_servers_refuse(ends, leader, bad, refused):
    """Each server (ends[i] reaches server i) answers each (svcMeth, args, reply type)
    in bad with a reply that refused(reply) accepts, before it would Start anything:
    the leader first, which would otherwise put the request in the log."""
    for i in [leader] + [i for i in range(len(ends)) if i != leader]:
        for svcMeth, args, reply_type in bad:
            reply = reply_type()
            assert ends[i].Call(svcMeth, args, reply), (i, svcMeth, args)
            assert refused(reply), (i, svcMeth, args, reply)


def check_kv_servers_refuse(ck, ends, leader, bad, err_bad_args):
    """kvraft's or shardkv's servers refuse each request in bad (see
    check_servers_refuse) with err_bad_args; their clerk ck then still refuses on its
    own, and serves."""
    check_servers_refuse(ends, leader, bad, lambda reply: reply.Err == err_bad_args)

    with pytest.raises(TypeError, match=re.escape("Put: key must be str, not int (123)")):
        ck.Put(123, "v")
    check_kv_serves(ck)


def start_past_the_checks(leader, servers, command):
    """Start command straight into the log, past the handlers' checks, as a server bug
    could: through servers[i] once leader() (as a config's Leader) is (True, i).
    Returns the entry's index."""
    while True:
        ok, i = leader()
        if ok:
            index, _, ok = servers[i].rf.Start(command)
            if ok:
                return index
        time.sleep(0.050)  # between elections


class ApplierFailures:
    """Catches what ends the appliers, threads named `<prefix>...-applier` (which would
    fail the test); what ends any other thread still goes to the hook it replaces."""

    def __init__(self, monkeypatch, prefix):
        self.prefix = prefix
        self.failures = queue.Queue()
        self.hook = threading.excepthook
        monkeypatch.setattr(threading, "excepthook", self._catch)

    def _catch(self, args):
        name = args.thread.name if args.thread is not None else ""
        if name.startswith(self.prefix) and name.endswith("-applier"):
            self.failures.put((name, args.exc_value))
        else:
            self.hook(args)

    def check(self, n, index, exc_type, entry):
        """n appliers fail, each with an exc_type noting the entry at index, whose
        repr starts with entry."""
        names = set()
        for _ in range(n):
            try:
                name, exc = self.failures.get(timeout=APPLY_WAIT)
            except queue.Empty:
                pytest.fail(f"only {sorted(names)} of the {n} appliers failed on entry {index}")
            names.add(name)
            assert isinstance(exc, exc_type), exc
            notes = getattr(exc, "__notes__", [])
            assert any(f"applying log entry {index}: {entry}" in note for note in notes), (name, notes)
