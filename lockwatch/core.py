"""Lab locks that know their owner, and the wait-for graph of the lab's threads.

install() replaces threading.Lock by a factory that gives code of the lab
packages (a file under raft/, kvraft/, shardctrler/ or shardkv/, the student's
copy too) a LabLock: the lock the factory made before (a real one, the race
detector's TrackedLock, or under --sim a SimLock) plus its owner thread and
the line where it was taken.  Locks made anywhere else are untouched.

A thread records what it blocks on while it blocks: a LabLock (_lock_waits),
the handler of a labrpc Call (labrpc.call_waits, filled by labrpc itself) or
a raft.Chan send nobody has taken yet (_send_waits).  Each gives one edge of
the wait-for graph: to the lock's owner, to the thread running the handler,
to the thread that last read the channel.  A thread waits for one thing at a
time, so a cycle is found by following edges; a cycle made of the same waits
for CYCLE_SECONDS is a deadlock (find_deadlock).

A thread that blocks on a lab lock it took itself with `with` can never go
on: SelfDeadlock is raised in it at once.  A blocking call (a Call, a channel
send, time.sleep, Thread.start) made while holding a lab lock is reported
through `on_held_across`, and a hold of LONG_HOLD seconds or more through
`on_long_hold`.
"""

import _thread
import itertools
import os
import re
import sys
import threading
import time
import weakref

import interpose

CYCLE_SECONDS = 2.0  # a cycle of the same waits this long is a deadlock

_LAB_FILE = re.compile(r"[/\\](raft|kvraft|shardctrler|shardkv)[/\\][^/\\]+\.py$")
_OWN_FILES = (os.path.dirname(os.path.abspath(__file__)),)

_get_ident = _thread.get_ident
_getframe = sys._getframe
_tokens = itertools.count(1)  # each wait's identity: the same cycle is the same tokens

_lock_waits = {}  # thread ident -> (LabLock, token, code, line) while it waits for that lock
_send_waits = {}  # thread ident -> (Chan, token) while it sends on that channel
call_waits = {}  # thread ident -> (labrpc _PendingCall, server name, Network): labrpc fills it
_held = set()  # LabLocks held now

_broken = set()  # idents whose lock wait break_cycle() ended (real time)
BREAK_POLL = 0.25  # seconds: how often a real-time lock wait looks at _broken

# fn(text, key, soft): a lock held across a blocking call (soft: a delay that is only ever
# a warning); set by the pytest plugin.
on_held_across = None
# fn(lock, taken, held, frame): a lab lock is let go after LONG_HOLD seconds or more
# (taken: time.monotonic() when it was taken; frame: where it is let go); set by the
# pytest plugin, for the timeline page.
on_long_hold = None
LONG_HOLD = 0.050
# Under --sim, the World: its lock waits are broken by interrupting the thread.
sim_world = None


class SelfDeadlock(RuntimeError):
    """A thread waits for a lock it holds itself: it would wait forever."""


class DeadlockBroken(SystemExit):
    """Ends a thread's lock wait in a reported deadlock, so that the failed test's
    cleanup can run: its `with` blocks release their locks on the way out.  A
    SystemExit, which ends the thread without a second report."""

    def __init__(self):
        super().__init__("lockwatch: this thread's lock wait was part of the deadlock reported; ended")


def break_cycle(idents):
    """Let the failed test's cleanup run: end the waits of these threads (not the
    main thread's: the test's own failure ends it).  Under --sim each one ends
    where it waits; in real time a lock wait ends, and the network of a Call is
    cleaned up (as the test's cleanup will do), so that every Call returns False."""
    main = threading.main_thread().ident
    for ident in idents:
        if ident == main:
            continue
        if sim_world is not None:
            t = sim_world.threads.get(ident)
            if t is not None:
                sim_world.interrupt(t, DeadlockBroken())
            continue
        wait = _lock_waits.get(ident)
        if wait is not None:
            _broken.add(wait[1])
        call = call_waits.get(ident)
        if call is not None:
            call[2].Cleanup()


def is_lab_file(filename, _cache={}):  # noqa: B006  (a cache on purpose)
    lab = _cache.get(filename)
    if lab is None:
        lab = _cache[filename] = bool(_LAB_FILE.search(filename))
    return lab


class LabLock:
    """threading.Lock for the lab's code: the same lock, plus who holds it and where
    it was taken (the `with` or acquire line), and what waits for it."""

    __slots__ = ("_inner", "owner", "code", "line", "by_with", "since", "maker", "site", "__weakref__")

    def __init__(self, inner, maker, site):
        self._inner = inner
        self.owner = None  # ident of the holding thread
        self.code = None  # where it took the lock: code object and line
        self.line = 0
        self.by_with = False  # taken by a `with`: only its holder's own __exit__ releases it
        self.since = 0.0  # time.monotonic() when it was taken (the virtual clock under --sim)
        self.maker = maker  # weakref to the object whose method made it (for its name), or None
        self.site = site  # "raft.py:238", where it was made

    @property
    def wrapped_lock(self):
        """The lock inside (the race detector names its TrackedLock after the field)."""
        return self._inner

    def acquire(self, blocking=True, timeout=-1):
        if self._inner.acquire(False):
            f = _getframe(1)
            self.owner, self.code, self.line, self.by_with = _get_ident(), f.f_code, f.f_lineno, False
            self.since = time.monotonic()
            _held.add(self)
            return True
        if not blocking:
            return False
        return self._wait(timeout, _getframe(1), False)

    def __enter__(self):
        if self._inner.acquire(False):
            f = _getframe(1)
            self.owner, self.code, self.line, self.by_with = _get_ident(), f.f_code, f.f_lineno, True
            self.since = time.monotonic()
            _held.add(self)
            return True
        return self._wait(-1, _getframe(1), True)

    def _wait(self, timeout, frame, by_with):
        me = _get_ident()
        if self.owner == me and self.by_with and timeout < 0:
            raise SelfDeadlock(self_deadlock_message(self, frame))
        token = next(_tokens)
        _lock_waits[me] = (self, token, frame.f_code, frame.f_lineno)
        try:
            if timeout >= 0 or sim_world is not None:
                ok = self._inner.acquire(True, timeout)
            else:
                # In real time a wait wakes now and then: the watchdog may have broken it.
                while not self._inner.acquire(True, BREAK_POLL):
                    if token in _broken:
                        _broken.discard(token)
                        raise DeadlockBroken()
                ok = True
        finally:
            _lock_waits.pop(me, None)
        if ok:
            self.owner, self.code, self.line, self.by_with = me, frame.f_code, frame.f_lineno, by_with
            self.since = time.monotonic()
            _held.add(self)
        return ok

    def release(self, _depth=1):
        if on_long_hold is not None and self.owner is not None:
            held = time.monotonic() - self.since
            if held >= LONG_HOLD:
                on_long_hold(self, self.since, held, _getframe(_depth))
        # Cleared before the release: the next owner sets its own at once.
        self.owner = None
        _held.discard(self)
        self._inner.release()

    def __exit__(self, exc_type, exc, tb):
        if exc_type is DeadlockBroken and self.owner != _get_ident():
            return  # broken while taking it back after a Condition wait: it holds nothing
        self.release(2)

    def locked(self):
        return self._inner.locked()

    # threading.Condition's protocol: a wait lets go of the lock and takes it back,
    # at the line of the cond.wait() (the caller of Condition.wait).
    def _is_owned(self):
        inner = self._inner
        return inner._is_owned() if hasattr(inner, "_is_owned") else inner.locked()

    def _release_save(self):
        by_with = self.by_with
        self.release(3)  # the line of the cond.wait()
        return by_with

    def _acquire_restore(self, by_with):
        f = _getframe(2)
        if self._inner.acquire(False):
            self.owner, self.code, self.line, self.by_with = _get_ident(), f.f_code, f.f_lineno, by_with
            self.since = time.monotonic()
            _held.add(self)
        else:
            self._wait(-1, f, by_with)

    def _at_fork_reinit(self):
        self._inner._at_fork_reinit()
        self.owner = None

    def __repr__(self):
        return f"<LabLock {lock_name(self)} {'locked' if self.locked() else 'unlocked'}>"


# ---- the factory ----

_patches = interpose.Patches("lockwatch")


def install():
    """From now on the lab's code gets LabLocks from threading.Lock.  Call after the
    race detector and the simulation have put their own lock factories in place:
    a LabLock wraps whatever they give."""
    if _patches:
        return
    make = threading.Lock

    def Lock():
        f = _getframe(1)
        if not is_lab_file(f.f_code.co_filename):
            return make()
        me = f.f_locals.get("self") if f.f_code.co_argcount else None
        try:
            maker = weakref.ref(me) if me is not None else None
        except TypeError:
            maker = None
        return LabLock(make(), maker, f"{os.path.basename(f.f_code.co_filename)}:{f.f_lineno}")

    _patches.patch(threading, "Lock", Lock)


def uninstall():
    _patches.restore()


def reset():
    """Between tests: forget waits of threads that are gone."""
    _broken.clear()
    alive = set(threading._active)
    for table in (_lock_waits, _send_waits, call_waits):
        for ident in [i for i in table if i not in alive]:
            table.pop(ident, None)


# ---- names and places ----


def _server(lock):
    """The object whose method made the lock, and its `gid` and `me` (ints, or None)."""
    obj = lock.maker() if lock.maker is not None else None
    fields = getattr(obj, "__dict__", {})
    gid, me = (fields.get(k) if isinstance(fields.get(k), int) else None for k in ("gid", "me"))
    return obj, fields, gid, me


def lock_lane(lock):
    """The timeline lane of the server whose object made the lock, if it says: its
    `me` (and `gid` in shardkv); else None."""
    _, _, gid, me = _server(lock)
    if me is None:
        return None
    return str(me) if gid is None else f"server-{gid}-{me}"


def lock_name(lock):
    """`Raft[1].mu`: the object and field that hold the lock, else where it was made."""
    obj, fields, gid, me = _server(lock)
    field = next((k for k, v in fields.items() if v is lock), None)
    if field is not None:
        who = [str(x) for x in (gid, me) if x is not None]
        return f"{type(obj).__name__}{'[' + ','.join(who) + ']' if who else ''}.{field}"
    return f"the lock made at {lock.site}"


def thread_name(ident):
    t = threading._active.get(ident)
    return t.name if t is not None else f"thread {ident}"


def _place(code, line):
    return f"{os.path.basename(code.co_filename)}:{line}"


def taken_at(lock):
    return _place(lock.code, lock.line) if lock.code is not None else "?"


def lab_place(frame):
    """file:line of the innermost lab frame at or above frame (else the first frame
    outside this package, threading and labrpc)."""
    first = None
    while frame is not None:
        name = frame.f_code.co_filename
        if frame.f_code.co_name in _CHAN_METHODS and name.endswith("util.py"):
            pass  # inside raft.Chan: the line that sends is further out
        elif is_lab_file(name):
            return _place(frame.f_code, frame.f_lineno)
        if first is None and not name.startswith(_OWN_FILES) and not name.endswith(("threading.py", "labrpc.py")):
            first = _place(frame.f_code, frame.f_lineno)
        frame = frame.f_back
    return first or "?"


_CHAN_METHODS = frozenset({"send", "recv", "give_up"})


def held_by(ident):
    return [lk for lk in tuple(_held) if lk.owner == ident]


def holds_text(locks):
    return " and ".join(f"{lock_name(lk)} (taken at {taken_at(lk)})" for lk in locks)


def self_deadlock_message(lock, frame):
    me = _get_ident()
    return (
        f"lockwatch: deadlock: thread {thread_name(me)} waits at {lab_place(frame)} for {lock_name(lock)}, "
        f"which it holds itself (taken at {taken_at(lock)}): a Lock is not reentrant (nor is Go's "
        f"sync.Mutex), so it would wait forever.  Call a helper that expects the lock held instead "
        f"of a method that takes it again."
    )


# ---- blocking while holding a lock ----


_BLOCKING_ADVICE = (
    "never hold a lock across an RPC, an applyCh send or a sleep (other threads wait for it all "
    "that time, and a peer or reader that needs it deadlocks)"
)
_START_ADVICE = (
    "Python's Thread.start() waits until the new thread runs (Go's `go` does not), and on a loaded "
    "machine every thread that needs the lock waits that long too (a leader misses its heartbeats): "
    "make the threads under the lock, start them after letting go of it"
)


def check_held(what, frame, advice=_BLOCKING_ADVICE, soft=False):
    """The calling thread is about to block in `what` ("Call to 2.RequestVote");
    report any lab lock it holds.  soft: only ever a warning (a delay, not a hang)."""
    if not _held or on_held_across is None:
        return
    mine = held_by(_get_ident())
    if not mine:
        return
    where = lab_place(frame)
    text = f"lockwatch: {thread_name(_get_ident())} holds {holds_text(mine)} across {what} at {where}: {advice}"
    on_held_across(text, (tuple(taken_at(lk) for lk in mine), where, what.split(" to ")[0]), soft)


def wrap_call(cls):
    """ClientEnd.Call checks the caller's locks first."""
    if hasattr(cls.Call, "__lockwatch__"):
        return
    call = cls.Call

    def Call(self, svcMeth, args, reply):
        if _held:
            check_held(f"Call({svcMeth!r})", _getframe(1))
        return call(self, svcMeth, args, reply)

    Call.__lockwatch__ = call
    Call.__wrapped__ = call
    cls.Call = Call


def wrap_chan(cls):
    """Chan.send checks the sender's locks and records its wait; recv records its reader."""
    if hasattr(cls.send, "__lockwatch__"):
        return
    send, recv = cls.send, cls.recv

    def tracked_send(self, value, *args, **kwargs):
        if _held:
            check_held("a channel send (applyCh)", _getframe(1))
        me = _get_ident()
        _send_waits[me] = (self, next(_tokens))
        try:
            return send(self, value, *args, **kwargs)
        finally:
            _send_waits.pop(me, None)

    def tracked_recv(self, *args, **kwargs):
        self._lockwatch_reader = _get_ident()
        return recv(self, *args, **kwargs)

    tracked_send.__lockwatch__ = (send, recv)
    tracked_send.__wrapped__ = send
    tracked_recv.__wrapped__ = recv
    cls.send, cls.recv = tracked_send, tracked_recv


def unwrap_call(cls):
    if hasattr(cls.Call, "__lockwatch__"):
        cls.Call = cls.Call.__lockwatch__


def unwrap_chan(cls):
    if hasattr(cls.send, "__lockwatch__"):
        cls.send, cls.recv = cls.send.__lockwatch__


def checked_start(start):
    """Thread.start, which checks the starter's locks first."""

    def start_(self):
        if _held:
            check_held("Thread.start()", _getframe(1), _START_ADVICE, soft=True)
        return start(self)

    start_.__wrapped__ = start
    return start_


def checked_sleep(sleep):
    def sleep_(secs):
        if _held:
            check_held(f"time.sleep({secs:g})", _getframe(1))
        return sleep(secs)

    sleep_.__wrapped__ = sleep
    return sleep_


# ---- the wait-for graph ----


def _edges():
    """ident -> (ident it waits for, token, what it waits on: a tuple)."""
    edges = {}
    for ident, (lock, token, code, line) in list(_lock_waits.items()):
        owner = lock.owner
        if owner is not None:
            edges[ident] = (owner, token, ("lock", lock, _place(code, line)))
    for ident, (call, server, _) in list(call_waits.items()):
        handler = call.handler
        if handler is not None:
            edges[ident] = (handler, call, ("call", server, call.svcMeth))
    for ident, (chan, token) in list(_send_waits.items()):
        reader = getattr(chan, "_lockwatch_reader", None)
        if reader is not None and reader in threading._active:
            edges[ident] = (reader, token, ("send", chan))
    return edges


def _cycles(edges):
    """Each cycle once, as a list of idents in wait order."""
    done = set()
    out = []
    for start in edges:
        path, index = [], {}
        node = start
        while node in edges and node not in done and node not in index:
            index[node] = len(path)
            path.append(node)
            node = edges[node][0]
        if node in index:
            out.append(path[index[node]:])
        done.update(path)
    return out


class Detector:
    """Finds a cycle of the same waits that lasts CYCLE_SECONDS."""

    def __init__(self):
        self.first_seen = {}  # frozenset of tokens -> when the cycle was first seen
        self.reported = set()

    def reset(self):
        self.first_seen.clear()
        self.reported.clear()

    def check(self, now):
        """The report of a deadlock seen for CYCLE_SECONDS by `now` (seconds), or None."""
        edges = _edges()
        if not edges:
            self.first_seen.clear()
            return None
        seen = {}
        report = None
        for cycle in _cycles(edges):
            if self.reported:
                # The test has failed on a deadlock: its threads' later cycles (the next
                # vote sender taking the lock...) only hold up its cleanup.
                break_cycle(cycle)
                continue
            key = frozenset(edges[i][1] for i in cycle)
            since = seen[key] = self.first_seen.get(key, now)
            if now - since >= CYCLE_SECONDS:
                self.reported.add(key)
                report = format_cycle(cycle, edges, now - since)
                break_cycle(cycle)
        self.first_seen = seen
        return report


def _blocked_at(ident):
    frame = sys._current_frames().get(ident)
    return lab_place(frame) if frame is not None else "?"


def _wait_text(ident, edge):
    kind = edge[0]
    if kind == "lock":
        lock, at = edge[1], edge[2]
        return f"waits at {at} for {lock_name(lock)}"
    if kind == "call":
        server, meth = edge[1], edge[2]
        return f"waits in Call to {server}.{meth.rpartition('.')[2]} ({_blocked_at(ident)})"
    return f"waits in a channel send ({_blocked_at(ident)}) for its reader"


def format_cycle(cycle, edges, seconds):
    # Start at a thread that is not a handler of the Call before it: a caller reads first.
    start = next((i for i in range(len(cycle)) if edges[cycle[i - 1]][2][0] != "call"), 0)
    cycle = cycle[start:] + cycle[:start]
    lines = [
        f"lockwatch: deadlock: {len(cycle)} thread(s) have waited for each other for {seconds:.1f} s "
        f"(a cycle in the wait-for graph: none of them can go on):"
    ]
    served = None  # the previous line was a Call this thread serves
    for ident in cycle:
        target, _, edge = edges[ident]
        name = thread_name(ident)
        who = f"that handler ({name})" if served else name
        mine = held_by(ident)
        text = f"{who} holds {holds_text(mine)} and " if mine else f"{who} "
        text += _wait_text(ident, edge)
        if edge[0] == "lock":
            text += f", held by {thread_name(target)}"
        elif edge[0] == "send":
            text += f" {thread_name(target)}"
        lines.append(f"  {text};")
        served = edge[0] == "call"
    lines[-1] = lines[-1][:-1] + "."
    lines.append(
        "  Never hold a lock across an RPC, an applyCh send or a sleep; "
        "take it again after the call and re-check what may have changed."
    )
    return "\n".join(lines)


def describe_waits():
    """For a stack dump: {thread ident: what it waits for and who holds it}."""
    edges = _edges()
    idents = set(edges) | set(_lock_waits) | {lk.owner for lk in tuple(_held)}
    return {ident: text for ident in idents if (text := describe_wait(ident, edges))}


def describe_wait(ident, edges=None):
    """What thread `ident` holds and waits for, and who holds that; or None."""
    edge = (_edges() if edges is None else edges).get(ident)
    parts = []
    mine = held_by(ident)
    if mine:
        parts.append(f"holds {holds_text(mine)}")
    if edge is not None:
        target, _, what = edge
        if what[0] == "lock":
            parts.append(f"waits for {lock_name(what[1])}, held by {thread_name(target)} "
                         f"(taken at {taken_at(what[1])})")
        elif what[0] == "call":
            # Not the handler's name: the senders of one RPC then group as one stack in a dump.
            parts.append(f"waits in Call to {what[1]}.{what[2].rpartition('.')[2]}")
        else:
            parts.append(f"waits in a channel send for its reader {thread_name(target)}")
    elif ident in _lock_waits:
        parts.append(f"waits for {lock_name(_lock_waits[ident][0])}")
    return "; ".join(parts) or None
