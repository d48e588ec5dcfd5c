"""The lockset race detector: tracked locks, happens-before edges, field shadows.

install() replaces threading.Lock and threading.RLock with tracked locks that
keep, per thread, the set of locks it holds (a Condition built on one drops and
re-takes it in that set as it waits), and hooks the hand-offs the Go detector
sees as happens-before edges: Thread.start and join, Event.set and wait,
queue.Queue put and get, and channels passed to track_channel (raft.Chan).
Lock release and acquire are deliberately not such edges: with them, one big
mutex taken around most code would order nearly every access and hide the
unlocked ones, which is why Eraser's lockset rule catches what a schedule
rarely shows.

instrument_class(cls) makes the reads and writes of the fields of cls's
instances visible (see instrument.py).  Each field of each object has a shadow,
run through Eraser's state machine:

    exclusive          one thread so far: no checks (initialisation, and state
                       handed over through a happens-before edge)
    shared             read by several threads, written by none since: the
                       candidate lockset C is the intersection of the locks held
                       at each access, but an empty C is not reported
    shared-modified    written and shared: C still shrinks, and a race is
                       reported once C is empty

Leaving `exclusive`, C starts as the locks of the first other thread's access,
as in Eraser; if the owner already held locks at its latest access it was past
initialisation, and C starts as the intersection of the two.

An access that happens after every access the shadow remembers (a field handed
to a new thread at start(), or through a channel) makes the field exclusive to
the accessing thread again, as in the Go detector.  The shadow remembers the
last read and write of the last HISTORY threads, which also gives the second
stack of a report.
"""

import _thread
import gc
import linecache
import queue
import re
import sys
import threading
import types
import weakref

import interpose

from . import sites

__all__ = [
    "HISTORY",
    "atomic_fields",
    "install",
    "installed",
    "reset",
    "take_reports",
    "track_channel",
    "uninstall",
]

HISTORY = 8  # threads whose last accesses each field's shadow remembers
STACK_DEPTH = 6  # frames kept of each access, for reports

EXCLUSIVE, SHARED, SHARED_MODIFIED = 0, 1, 2

# Go's atomic int32 `dead` (atomic.StoreInt32/LoadInt32 in the skeleton) is not
# a race for -race: every instrumented class treats these fields as atomic.
DEFAULT_ATOMIC = frozenset({"dead"})

_get_ident = _thread.get_ident
_getframe = sys._getframe
_mu = _thread.RLock()  # guards the detector's own state; reentrant in case GC runs a hook inside

_installed = False
_originals = {}  # (owner, attribute) -> the value install() or track_channel() replaced
_patches = interpose.Patches("--race")

_states = {}  # thread ident -> _ThreadState of the thread running under that ident
_next_tid = 0

_shadows = {}  # id(object) -> {field: _Shadow}
_keepalive = {}  # id(object) -> weakref (or the object, when it takes no weakref)
_reports = []  # reports not yet taken by take_reports()
_reported = set()  # keys of the races already reported


# ---- threads and vector clocks ---------------------------------------------------------


class _ThreadState:
    __slots__ = ("tid", "name", "vc", "locks")

    def __init__(self, name, vc):
        global _next_tid
        with _mu:
            _next_tid += 1
            self.tid = _next_tid
        self.name = name
        self.vc = vc
        vc[self.tid] = 1
        self.locks = frozenset()


def _current():
    st = _states.get(_get_ident())
    if st is None:
        # A thread not started through threading.Thread under the detector (the
        # main thread, or one started before install): it starts with no edges.
        # threading._active, not current_thread(), which could build a dummy thread.
        t = threading._active.get(_get_ident())
        st = _ThreadState(t.name if t is not None else f"thread-{_get_ident()}", {})
        _states[_get_ident()] = st
    return st


def _release_clock(st):
    """A copy of st's clock for a sync object, then advance st's own epoch."""
    vc = dict(st.vc)
    st.vc[st.tid] += 1
    return vc


def _acquire_clock(st, vc):
    mine = st.vc
    for tid, c in vc.items():
        if mine.get(tid, 0) < c:
            mine[tid] = c


def _publish(obj, st):
    """Release: what st did so far happens before whoever acquires obj's clock."""
    with _mu:
        vc = _release_clock(st)
        old = getattr(obj, "_race_vc", None)
        if old is not None:
            for tid, c in old.items():
                if vc.get(tid, 0) < c:
                    vc[tid] = c
        obj._race_vc = vc


def _subscribe(obj, st):
    vc = getattr(obj, "_race_vc", None)
    if vc is not None:
        with _mu:
            _acquire_clock(st, vc)


# ---- tracked locks ---------------------------------------------------------------------


def _creation_site(depth=2):
    f = _getframe(depth)
    return f"{f.f_code.co_filename.rsplit('/', 1)[-1]}:{f.f_lineno}"


class TrackedLock:
    """threading.Lock that keeps the owner's held-lock set up to date.  `name` is
    the field the lock was first stored in (Raft.mu), else where it was made."""

    __slots__ = ("_lock", "_owner", "name", "__weakref__")

    def __init__(self, name=None):
        self._lock = _thread.allocate_lock()
        self._owner = None  # _ThreadState holding the lock
        self.name = name

    def acquire(self, blocking=True, timeout=-1):
        ok = self._lock.acquire(blocking, timeout)
        if ok:
            st = _current()
            self._owner = st
            st.locks = st.locks | {self}
        return ok

    __enter__ = acquire

    def release(self):
        st = self._owner
        if st is not None:  # a Lock may be released by another thread than its owner
            self._owner = None
            st.locks = st.locks - {self}
        self._lock.release()

    def __exit__(self, *exc):
        self.release()

    def locked(self):
        return self._lock.locked()

    def _is_owned(self):  # what threading.Condition asks before wait and notify
        st = self._owner
        return st is not None and _states.get(_get_ident()) is st and self._lock.locked()

    def _at_fork_reinit(self):
        self._lock._at_fork_reinit()
        self._owner = None

    def __repr__(self):
        return f"<TrackedLock {self.name} {'locked' if self.locked() else 'unlocked'}>"


class TrackedRLock:
    """threading.RLock with the same bookkeeping; in the held set while count > 0."""

    __slots__ = ("_lock", "_count", "name", "__weakref__")

    def __init__(self, name=None):
        # Under --sim, threading has no C RLock (_CRLock is None): the Python one waits
        # on simulated locks, where a real RLock would block the simulation's only runner.
        self._lock = _thread.RLock() if threading._CRLock is not None else threading._PyRLock()
        self._count = 0
        self.name = name

    def acquire(self, blocking=True, timeout=-1):
        ok = self._lock.acquire(blocking, timeout)
        if ok:
            self._count += 1
            if self._count == 1:
                st = _current()
                st.locks = st.locks | {self}
        return ok

    __enter__ = acquire

    def release(self):
        if not self._lock._is_owned():
            self._lock.release()  # raises RuntimeError, as RLock does
        self._count -= 1
        if self._count == 0:
            st = _current()
            st.locks = st.locks - {self}
        self._lock.release()

    def __exit__(self, *exc):
        self.release()

    def _is_owned(self):
        return self._lock._is_owned()

    def _release_save(self):  # Condition.wait: let go of every level at once
        count = self._count
        self._count = 0
        st = _current()
        st.locks = st.locks - {self}
        return self._lock._release_save(), count

    def _acquire_restore(self, saved):
        state, count = saved
        self._lock._acquire_restore(state)
        self._count = count
        st = _current()
        st.locks = st.locks | {self}

    def _at_fork_reinit(self):
        self._lock._at_fork_reinit()
        self._count = 0

    def __repr__(self):
        return f"<TrackedRLock {self.name} count={self._count}>"


def _make_lock():
    return TrackedLock(_creation_site())


def _make_rlock(*args, **kwargs):
    return TrackedRLock(_creation_site())


def lock_name(lock):
    return getattr(lock, "name", None) or repr(lock)


# ---- happens-before hooks --------------------------------------------------------------


def _thread_start(self):
    st = _current()
    with _mu:
        self._race_start_vc = _release_clock(st)
    return _originals[threading.Thread, "start"](self)


def _thread_bootstrap_inner(self):
    ident = _get_ident()
    st = _ThreadState(self.name, self.__dict__.pop("_race_start_vc", {}))
    _states[ident] = st
    try:
        return _originals[threading.Thread, "_bootstrap_inner"](self)
    finally:
        with _mu:
            self._race_final_vc = dict(st.vc)
        if _states.get(ident) is st:
            del _states[ident]


def _thread_join(self, timeout=None):
    result = _originals[threading.Thread, "join"](self, timeout)
    vc = self.__dict__.get("_race_final_vc")
    if vc is not None and not self.is_alive():
        with _mu:
            _acquire_clock(_current(), vc)
    return result


def _event_set(self):
    _publish(self, _current())
    return _originals[threading.Event, "set"](self)


def _event_wait(self, timeout=None):
    ok = _originals[threading.Event, "wait"](self, timeout)
    if ok:
        _subscribe(self, _current())
    return ok


def _event_is_set(self):
    ok = _originals[threading.Event, "is_set"](self)
    if ok:
        _subscribe(self, _current())
    return ok


# A queue carries one clock for all its items: a get() is ordered after every
# put() so far, a little more than Go's per-element edge, never less.
def _queue_put(self, item, block=True, timeout=None):
    _publish(self, _current())
    return _originals[queue.Queue, "put"](self, item, block, timeout)


def _queue_get(self, block=True, timeout=None):
    item = _originals[queue.Queue, "get"](self, block, timeout)
    _subscribe(self, _current())
    return item


class _Envelope:
    """A channel value with the sender's clock; the receiver unwraps it."""

    __slots__ = ("value", "vc")

    def __init__(self, value, vc):
        self.value = value
        self.vc = vc


def track_channel(cls):
    """Make cls.send(value) -> ok and cls.recv(...) -> (value, ok) happens-before
    edges from each send to the receive that takes its value (Go's channel rule)."""
    if (cls, "send") in _originals:
        return cls
    send, recv = cls.send, cls.recv
    _originals[cls, "send"] = send
    _originals[cls, "recv"] = recv

    def tracked_send(self, value, *args, **kwargs):
        st = _current()
        with _mu:
            vc = _release_clock(st)
        return send(self, _Envelope(value, vc), *args, **kwargs)

    def tracked_recv(self, *args, **kwargs):
        value, ok = recv(self, *args, **kwargs)
        if ok and type(value) is _Envelope:
            with _mu:
                _acquire_clock(_current(), value.vc)
            value = value.value
        return value, ok

    tracked_send.__wrapped__ = send
    tracked_recv.__wrapped__ = recv
    cls.send = tracked_send
    cls.recv = tracked_recv
    return cls


def untrack_channel(cls):
    if (cls, "send") in _originals:
        cls.send = _originals.pop((cls, "send"))
        cls.recv = _originals.pop((cls, "recv"))


_HOOKS = [
    (threading, "Lock", _make_lock),
    (threading, "RLock", _make_rlock),
    (threading.Thread, "start", _thread_start),
    (threading.Thread, "_bootstrap_inner", _thread_bootstrap_inner),
    (threading.Thread, "join", _thread_join),
    (threading.Event, "set", _event_set),
    (threading.Event, "wait", _event_wait),
    (threading.Event, "is_set", _event_is_set),
    (queue.Queue, "put", _queue_put),
    (queue.Queue, "get", _queue_get),
]


def install():
    """Start tracking locks and hand-offs: call before the code under test
    creates its locks (locks made earlier are invisible).  Idempotent."""
    global _installed
    with _mu:
        if _installed:
            return
        interpose.check_python("--race")
        try:
            for owner, attr, hook in _HOOKS:
                _originals[owner, attr] = _patches.patch(owner, attr, hook)
        except BaseException:
            _patches.restore()
            for owner, attr, _ in _HOOKS:
                _originals.pop((owner, attr), None)
            raise
        _installed = True


def uninstall():
    """Undo install(); tracked locks already made go on working."""
    global _installed
    with _mu:
        if not _installed:
            return
        _patches.restore()
        for owner, attr, _ in _HOOKS:
            del _originals[owner, attr]
        _installed = False


def installed():
    return _installed


# ---- field shadows -------------------------------------------------------------------------


class _Access:
    __slots__ = ("tid", "epoch", "thread", "write", "locks", "stack", "shared")

    def __init__(self, st, write, stack):
        self.shared = False  # made once the field was shared (not initialisation)
        self.tid = st.tid
        self.epoch = st.vc[st.tid]
        self.thread = st.name
        self.write = write
        self.locks = st.locks
        self.stack = stack


class _Shadow:
    __slots__ = ("state", "owner", "owner_locks", "lockset", "history", "reported")

    def __init__(self, tid):
        self.state = EXCLUSIVE
        self.owner = tid
        self.owner_locks = frozenset()  # locks held at the exclusive owner's latest access
        self.lockset = None
        self.history = {}  # tid -> [last read, last write] of that thread (insertion order: oldest first)
        self.reported = False


def _stack(frame):
    """(code, lasti, code, lasti, ...) of the accessing frame and its callers:
    a flat tuple, the cheapest thing to build on every access."""
    out = []
    for _ in _DEPTH:
        if frame is None:
            break
        out += (frame.f_code, frame.f_lasti)
        frame = frame.f_back
    return tuple(out)


_DEPTH = range(STACK_DEPTH)


def _forget(key):
    # Runs when a tracked object is freed, before its id can be reused.
    _shadows.pop(key, None)
    _keepalive.pop(key, None)


def _fields(obj):
    key = id(obj)
    fields = _shadows.get(key)
    if fields is None:
        fields = _shadows[key] = {}
        try:
            _keepalive[key] = weakref.ref(obj, lambda _, key=key: _forget(key))
        except TypeError:  # __slots__ without __weakref__: keep it alive, so its id stays its own
            _keepalive[key] = obj
    return fields


def access(obj, name, write, frame, value=None):
    """Record a read or write of obj.name by the running thread; frame is the
    accessing code's.  A read that loads a list/dict/set which the code then
    changes (self.log.append) is a write."""
    if not write and isinstance(value, _CONTAINERS) and sites.mutates(frame.f_code, frame.f_lasti, name):
        write = True
    st = _states.get(_get_ident()) or _current()
    rec = _Access(st, write, _stack(frame))
    report = None
    with _mu:
        fields = _fields(obj)
        sh = fields.get(name)
        if sh is None:
            fields[name] = sh = _Shadow(st.tid)
        elif not (sh.state == EXCLUSIVE and sh.owner == st.tid):
            report = _transition(obj, name, sh, st, rec)
            rec.shared = sh.state != EXCLUSIVE
        if sh.state == EXCLUSIVE:
            sh.owner_locks = rec.locks
        _remember(sh, rec)
    if report is not None:
        _emit(report)


_CONTAINERS = (list, dict, set, bytearray)
try:
    from collections import deque as _deque

    _CONTAINERS = _CONTAINERS + (_deque,)
except ImportError:  # pragma: no cover
    pass


def _remember(sh, rec):
    h = sh.history
    slot = h.pop(rec.tid, None)  # re-insert: most recent last
    if slot is None:
        slot = [None, None]
        if len(h) >= HISTORY:
            del h[next(iter(h))]
    slot[rec.write] = rec
    h[rec.tid] = slot


def _transition(obj, name, sh, st, rec):
    """Eraser's step for an access by another thread than the exclusive owner,
    or to a shared field; returns a report when the race is new."""
    vc = st.vc
    concurrent = False
    for tid, slot in sh.history.items():
        if tid == st.tid:
            continue
        seen = vc.get(tid, 0)
        for prev in slot:
            if prev is not None and prev.epoch > seen:
                concurrent = True
                break
        if concurrent:
            break
    if not concurrent:
        # Everything remembered happened before this access: a hand-off.
        sh.state, sh.owner, sh.lockset = EXCLUSIVE, st.tid, None
        sh.history = {st.tid: sh.history[st.tid]} if st.tid in sh.history else {}
        return None
    if sh.state == EXCLUSIVE:
        sh.state = SHARED_MODIFIED if rec.write else SHARED
        # Eraser takes the owner's accesses for initialisation and ignores their
        # locks; an owner that already held locks was past that, so they count.
        sh.lockset = rec.locks & sh.owner_locks if sh.owner_locks else rec.locks
    else:
        sh.lockset = sh.lockset & rec.locks
        if rec.write:
            sh.state = SHARED_MODIFIED
    if sh.state != SHARED_MODIFIED or sh.lockset or sh.reported:
        return None
    sh.reported = True
    other = _partner(sh, st, rec)
    # One report per field and pair of sites, whichever of the two came first.
    key = (type(obj).__qualname__, name, frozenset((_site(rec.stack), other and _site(other.stack))))
    if key in _reported:
        return None
    _reported.add(key)
    return _format(obj, name, rec, other)


def _partner(sh, st, rec):
    """The earlier access of another thread that best explains the race:
    concurrent with rec, sharing none of its locks, made after the field became
    shared (not its initialisation), a write if rec is a read."""
    best, best_score = None, None
    for tid, slot in sh.history.items():
        if tid == st.tid:
            continue
        for prev in slot:
            if prev is None or not (prev.write or rec.write):
                continue
            score = (prev.epoch > st.vc.get(tid, 0), not (prev.locks & rec.locks), prev.shared, prev.write)
            if best_score is None or score > best_score:
                best, best_score = prev, score
    return best


def _site(stack):
    if not stack:
        return None
    return stack[0].co_filename, _line(stack[0], stack[1])


def _line(code, lasti):
    for start, end, line in code.co_lines():
        if start <= lasti < end:
            return line
    return code.co_firstlineno


# ---- reports ---------------------------------------------------------------------------------


def _describe(obj):
    try:
        d = object.__getattribute__(obj, "__dict__")
    except AttributeError:
        d = {}
    who = f" me={d['me']}" if isinstance(d.get("me"), int) else ""
    return f"{type(obj).__qualname__} object at {id(obj):#x}{who}"


def _format_locks(locks):
    if not locks:
        return "no locks held"
    return "locks held: " + ", ".join(sorted(lock_name(lk) for lk in locks))


_HARNESS = re.compile(r"[/\\](_pytest|pluggy)[/\\]")


def _format_stack(stack):
    lines = []
    for code, lasti in zip(stack[::2], stack[1::2]):
        if code.co_filename == threading.__file__ or _HARNESS.search(code.co_filename):
            break  # a thread's bootstrap, or pytest calling the test: nothing of the lab's below
        line = _line(code, lasti)
        src = linecache.getline(code.co_filename, line).strip()
        lines.append(f'      File "{code.co_filename}", line {line}, in {_qualname(code)}')
        if src:
            lines.append(f"        {src}")
    return "\n".join(lines)


def _qualname(code):
    """`Counter.incr` rather than `incr`; Python 3.10's code objects lack co_qualname."""
    if hasattr(code, "co_qualname"):
        return code.co_qualname
    for ref in gc.get_referrers(code):  # only while a report is written
        if isinstance(ref, types.FunctionType) and ref.__code__ is code:
            return ref.__qualname__
    return code.co_name


def _format(obj, name, rec, other):
    field = f"{type(obj).__qualname__}.{name}"
    kind = "Write" if rec.write else "Read"
    out = [
        "WARNING: DATA RACE",
        f"  field {field} of {_describe(obj)}",
        f"  {kind} of {field} by thread {rec.thread!r} ({_format_locks(rec.locks)}):",
        _format_stack(rec.stack),
    ]
    if other is not None:
        okind = "write" if other.write else "read"
        out += [
            f"  Previous {okind} of {field} by thread {other.thread!r} ({_format_locks(other.locks)}):",
            _format_stack(other.stack),
        ]
    else:
        out.append("  (the earlier conflicting access is no longer in the field's history)")
    out.append(
        f"  No lock is held at every access to {field} since it became shared (Eraser lockset rule)."
    )
    return "\n".join(out)


# Print each report to stderr the moment it is made (the lab runs); the detector's own
# unit tests turn it off, since they make races on purpose and take the reports.
ECHO = True


def _emit(report):
    with _mu:
        _reports.append(report)
    if not ECHO:
        return
    try:
        print("\n" + report + "\n", file=sys.stderr, flush=True)
    except Exception:  # a closed stderr must not turn into a failure of the accessing thread
        pass


def take_reports():
    """The race reports made since the last call, each distinct race once."""
    with _mu:
        out = list(_reports)
        _reports.clear()
    return out


def reset():
    """Forget every field shadow and reported race (between tests).  With no
    access left to compare with, the threads' clocks can forget the other
    threads too, which keeps them from growing with every thread ever started."""
    with _mu:
        _shadows.clear()
        _keepalive.clear()
        _reports.clear()
        _reported.clear()
        for st in list(_states.values()):
            st.vc = {st.tid: st.vc[st.tid]}


def atomic_fields(cls):
    """Fields of cls read and written like Go atomics: never reported.  A class
    adds its own with a class attribute, e.g. __race_atomic__ = ("dead", "term")."""
    return DEFAULT_ATOMIC | frozenset(getattr(cls, "__race_atomic__", ()))
