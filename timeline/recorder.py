"""The recorder: structured events from labrpc and the test harnesses, kept in
bounded rings while a test runs, for the timeline page of a failed test.

Every hook starts with `if not _on: return`, so with recording off (outside a
test, or `--timeline off`) a hook costs one function call.  With it on, a hook
appends a small list to a deque: deque.append is atomic in CPython, so the
hooks take no lock, which also keeps them out of the --sim scheduler's way (a
simulated lock is a scheduling point under --sim-preempt).  Times are
time.monotonic() in microseconds since the test began: the virtual clock under
--sim, so a seed gives the same numbers every run.

The rings are bounded (RPC_LIMIT calls, EVENT_LIMIT other events): a long test
keeps its last stretch, and the page says what fell out.
"""

import collections
import functools
import itertools
import reprlib
import sys
import threading
import time

RPC_LIMIT = 150_000
EVENT_LIMIT = 60_000
RAFT_KINDS = frozenset(("RequestVote", "AppendEntries", "InstallSnapshot"))

_on = False
_t0 = 0.0
rpcs = collections.deque(maxlen=RPC_LIMIT)  # [t_sent, endname, server, svcMeth, term, t_delivered, t_replied]
events = collections.deque(maxlen=EVENT_LIMIT)  # [t, what, lane or None, detail...]
ends = {}  # endname -> [owner lane or None, server it is connected to, when the owner took it]
_rpc_count = itertools.count()  # next() is atomic: how many calls were recorded, kept or not
_event_count = itertools.count()
_raft_kind = {}  # svcMeth -> whether its args carry a Raft term
_nesting = threading.local()  # how deep in traced calls each thread is


class _Brief(reprlib.Repr):
    """A short repr without memory addresses, which would differ between two runs of a seed."""

    def repr_instance(self, x, level):
        name = getattr(x, "__qualname__", None) or getattr(x, "__name__", None)
        if name is None and hasattr(x, "__func__"):
            name = x.__func__.__qualname__  # a bound method
        return name if isinstance(name, str) else f"<{type(x).__name__}>"


_brief = _Brief()
_brief.maxstring = 60
_brief.maxother = 60
_brief.maxlist = 8


def now():
    return int((time.monotonic() - _t0) * 1_000_000)


def begin():
    """Start recording a test from empty rings; its time 0 is now."""
    global _on, _t0, _rpc_count, _event_count
    rpcs.clear()
    events.clear()
    ends.clear()
    _rpc_count, _event_count = itertools.count(), itertools.count()
    _t0 = time.monotonic()
    _on = True


def stop():
    """Stop recording; returns the time it stopped at (microseconds)."""
    global _on
    t = now()
    _on = False
    return t


def recording():
    return _on


def totals():
    """(calls, events) recorded since begin(), kept in the rings or not; call once, at the end."""
    return next(_rpc_count), next(_event_count)


def lane(server):
    """The lane of a labrpc server name (raft's 0, shardkv's "server-101-2")."""
    return str(server)


# ---- labrpc -------------------------------------------------------------------------


def rpc_sent(endname, server, svcMeth, args):
    """A call leaves endname for server; returns its record for the two hooks below."""
    if not _on:
        return None
    raft = _raft_kind.get(svcMeth)
    if raft is None:
        raft = _raft_kind[svcMeth] = svcMeth.rpartition(".")[2] in RAFT_KINDS
    term = getattr(args, "Term", None) if raft else None
    rec = [now(), endname, server, svcMeth, term if type(term) is int else None, None, None]
    rpcs.append(rec)
    next(_rpc_count)
    return rec


def rpc_delivered(rec):
    """The handler ran (the reply may still be lost)."""
    if rec is not None:
        rec[5] = now()


def rpc_replied(rec):
    """The caller got the reply."""
    if rec is not None:
        rec[6] = now()


def connect(endname, server):
    if _on:
        ends.setdefault(endname, [None, None, None])[1] = lane(server)


def net(op, *args):
    """A change of the network: Enable(endname, on), Reliable(yes), LongReordering(yes),
    AddServer(name), DeleteServer(name)."""
    if _on:
        _event(op, None, *args)


# ---- the harnesses ------------------------------------------------------------------


def owner(end_list, server):
    """The ends (ClientEnds or names) that server sends through."""
    if _on:
        t = now()
        for e in end_list:
            name = getattr(e, "endname", None) or getattr(getattr(e, "end", None), "endname", e)
            rec = ends.setdefault(name, [None, None, None])
            rec[0], rec[2] = lane(server), t


def state(server, term, is_leader):
    """A GetState() result the tester saw."""
    if _on:
        _event("state", lane(server), _number(term), bool(is_leader))


def start(server, command, index, ok):
    """A Start(command) the tester made, and its answer."""
    if _on:
        _event("start", lane(server), _brief.repr(command), _number(index), bool(ok))


def applied(server, index, snapshot=False):
    """The tester read index off server's apply channel (a snapshot's last index if snapshot)."""
    if _on:
        _event("applied", lane(server), _number(index), bool(snapshot))


def failure(msg):
    """A failure found in a background thread of the harness."""
    if _on:
        _event("failure", None, str(msg)[:2000])


def lock_held(lane, taken, held, text):
    """A lab lock held `held` seconds from time.monotonic() `taken` (lockwatch tells)."""
    if _on:
        t = int((taken - _t0) * 1_000_000)
        _event("held", lane, t, t + int(held * 1_000_000), text[:300])


def dprintf(server, topic, line):
    """A student's debug line (only when VERBOSE is set)."""
    if _on:
        _event("log", lane(server), topic, line[:300])


def traced(fn):
    """A harness method as a span on the tester's lane: its arguments, its result,
    and, when it raises (pytest.fail), the failure point.  `cleanup` entered while
    an exception is in flight marks the failure point too."""
    name = fn.__name__

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        __tracebackhide__ = True  # pytest shows the harness method, not this wrapper
        if not _on:
            return fn(*args, **kwargs)
        in_flight = sys.exc_info()[1]
        depth = getattr(_nesting, "depth", 0)
        rec = _event("call", None, name, _args(args[1:], kwargs), depth)  # + [t_end, result] once it returns
        if in_flight is not None:
            _event("failure", None, _message(in_flight))
        _nesting.depth = depth + 1
        try:
            result = fn(*args, **kwargs)
        except BaseException as e:
            rec.extend((now(), "raised"))
            _event("failure", None, _message(e))
            raise
        finally:
            _nesting.depth = depth
        rec.extend((now(), _brief.repr(result)))
        return result

    return wrapper


def _number(x):
    """An int as it is; anything else a student's code returned, as a short repr."""
    return x if type(x) is int else _brief.repr(x)


def _event(what, where, *detail):
    rec = [now(), what, where, *detail]
    events.append(rec)
    next(_event_count)
    return rec


def _args(args, kwargs):
    parts = [_brief.repr(a) for a in args] + [f"{k}={_brief.repr(v)}" for k, v in kwargs.items()]
    return ", ".join(parts)


def _message(exc):
    text = getattr(exc, "msg", None) or str(exc)
    return f"{type(exc).__name__}: {text}"[:2000]
