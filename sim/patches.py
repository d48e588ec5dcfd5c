"""What --sim replaces in the standard library, and the simulated lock.

One primitive is simulated, the lock: `_thread.allocate_lock` (and so
threading.Lock, the waiters of threading.Condition, and through them Event,
Semaphore, Barrier, queue.Queue and the pure-Python RLock and SimpleQueue) gives
a SimLock to a simulated thread.  Besides: thread start, join and is_alive;
time.sleep and the clocks; the global `random`, unseeded Random instances and
os.urandom, which draw from the seed.

A thread outside the simulation (a watchdog, or any thread inside
realtime.real()) gets the real thing from every factory, and a real sleep.
"""

import _thread
import itertools
import math
import os
import queue
import random
import sys
import threading
import time

import interpose

from . import realtime
from .scheduler import MIN_SLEEP_NS, BASE_TIME_NS, BASE_MONOTONIC_NS, SLEEP, World

_world = None  # the World while installed
_patches = interpose.Patches("sim")
_NS = 10**9


def world():
    return _world


def _ns(seconds):
    """A timeout in whole nanoseconds, rounded up: a thread that waits until a
    time it computed from monotonic() finds, when it wakes, that it has come."""
    return math.ceil(seconds * _NS)


class SimLock:
    """A lock on which a simulated thread blocks in the simulation.  As in CPython
    (and Go's mutex in its normal mode), a release does not hand the lock over:
    it wakes one waiter, picked by the seeded RNG, which tries again when it
    runs, and the releasing thread may take the lock back first."""

    __slots__ = ("_locked", "_waiters", "__weakref__")

    def __init__(self):
        self._locked = False
        self._waiters = []

    def acquire(self, blocking=True, timeout=-1):
        __tracebackhide__ = True
        if not self._locked:
            self._locked = True
            return True
        if not blocking:
            if timeout != -1:
                raise ValueError("can't specify a timeout for a non-blocking call")
            return False
        if timeout < 0 and timeout != -1:
            raise ValueError("timeout value must be a non-negative number")
        w = _world
        me = w.me() if w is not None else None
        if me is None:
            return self._acquire_outside(timeout)
        deadline = None if timeout == -1 else w.now + _ns(timeout)
        while self._locked:
            if deadline is not None and w.now >= deadline:
                return False
            self._waiters.append(me)
            w.block(me, self, deadline)
        self._locked = True
        return True

    def _acquire_outside(self, timeout):
        # A thread outside the simulation polls in real time; the simulated
        # threads never wait for it, so it never holds the baton up.
        end = None if timeout == -1 else realtime.monotonic() + timeout
        while self._locked:
            if end is not None and realtime.monotonic() >= end:
                return False
            realtime.sleep(0.001)
        self._locked = True
        return True

    def release(self):
        if not self._locked:
            raise RuntimeError("release unlocked lock")
        self._locked = False
        w = _world
        if w is None:
            return
        me = w.me()
        if self._waiters:
            n = len(self._waiters)
            t = self._waiters.pop(w.rng.randrange(n) if n > 1 else 0)
            if me is None:  # outside the simulation: the baton holder wakes it
                w.request(t, _retry)
                return
            w.wake(t)
        if w.preempt and me is not None:
            w.preempt_point(me)

    __enter__ = acquire

    def __exit__(self, *exc):
        self.release()

    def locked(self):
        return self._locked

    def _at_fork_reinit(self):
        self._locked = False
        self._waiters = []

    def __repr__(self):
        return f"<{'locked' if self._locked else 'unlocked'} sim lock object at {id(self):#x}>"


def _retry(frame):
    """Resumes a waiter woken from outside the simulation: its acquire tries again."""


def allocate_lock():
    w = _world
    if w is None or realtime.in_real_mode() or w.me() is None:
        return realtime.allocate_lock()
    return SimLock()


# ---- time ----


def sleep(secs):
    __tracebackhide__ = True
    w = _world
    me = w.me() if w is not None else None
    if me is None or realtime.in_real_mode():
        return realtime.sleep(secs)
    if secs < 0:
        raise ValueError("sleep length must be non-negative")
    deadline = w.now + max(MIN_SLEEP_NS, _ns(secs))
    while w.now < deadline:
        w.block(me, SLEEP, deadline)


# Outside the simulation (a thread it does not run, or realtime.real()) the clocks are real.


def _outside():
    return realtime.in_real_mode() or _world.me() is None


def monotonic_ns():
    return _real_clock["monotonic_ns"]() if _outside() else _world.now


def monotonic():
    return _real_clock["monotonic"]() if _outside() else _world.now / _NS


def perf_counter_ns():
    return _real_clock["perf_counter_ns"]() if _outside() else _world.now


def perf_counter():
    return _real_clock["perf_counter"]() if _outside() else _world.now / _NS


def time_ns():
    return _real_clock["time_ns"]() if _outside() else _world.now - BASE_MONOTONIC_NS + BASE_TIME_NS


def time_():
    return _real_clock["time"]() if _outside() else (_world.now - BASE_MONOTONIC_NS + BASE_TIME_NS) / _NS


_real_clock = {name: getattr(time, name) for name in ("monotonic", "monotonic_ns", "perf_counter", "perf_counter_ns", "time", "time_ns")}


# ---- threads ----


def _sim_start(real_start, function, args, kwargs, start_kwargs):
    """Start `function` on a new OS thread that runs as a simulated thread."""
    w = _world
    thread = getattr(function, "__self__", None)
    if (
        w is None
        or realtime.in_real_mode()
        or getattr(thread, "sim_exempt", False)
        or w.me() is None
    ):
        return real_start(function, args, kwargs, start_kwargs)
    is_thread = isinstance(thread, threading.Thread)
    t = w.new_thread(thread.name if is_thread else getattr(function, "__name__", "thread"), thread if is_thread else None)
    if is_thread:
        thread._sim = t

    def run():
        w.enter(t)
        try:
            function(*args, **kwargs)
        finally:
            w.exit(t)

    ident = real_start(run, (), {}, start_kwargs)
    if w.preempt:
        w.preempt_point(w.me())
    return ident


def _start_new_thread(function, args, kwargs={}):  # noqa: B006  (the C signature's default)
    return _sim_start(lambda f, a, k, _: _real["start_new_thread"](f, a, k), function, args, kwargs, None)


def _start_joinable_thread(function, handle=None, daemon=True):  # Python 3.13
    def real_start(f, a, k, sk):
        return _real["start_joinable_thread"](f, **sk)

    return _sim_start(real_start, function, (), {}, {"handle": handle, "daemon": daemon})


def join(self, timeout=None):
    __tracebackhide__ = True
    t = getattr(self, "_sim", None)
    w = _world
    me = w.me() if (w is not None and t is not None) else None
    if me is None:
        return _real["join"](self, timeout)
    if not self._started.is_set():
        raise RuntimeError("cannot join thread before it is started")
    if t is me:
        raise RuntimeError("cannot join current thread")
    deadline = None if timeout is None else w.now + _ns(max(timeout, 0))
    while not t.done:
        if deadline is not None and w.now >= deadline:
            return
        t._waiters.append(me)
        w.block(me, t, deadline)
    # The OS thread is past the simulation and ends on its own: a short real wait.
    _real["join"](self)


def is_alive(self):
    t = getattr(self, "_sim", None)
    if t is not None and t.done:
        _real["join"](self)  # its last steps are real ones: let them finish, so the answer is stable
    return _real["is_alive"](self)


# ---- random ----


class Random(random.Random):
    """random.Random whose unseeded instances draw their seed from the simulation's."""

    def seed(self, a=None, version=2):
        if a is None and _world is not None:
            a = _entropy(1).getrandbits(64)
        super().seed(a, version)


def urandom(n):
    if _world is None:
        return realtime.urandom(n)
    return _entropy(1).getrandbits(8 * n).to_bytes(n, "little") if n else b""


_STDLIB = os.path.dirname(os.__file__)


def _entropy(depth):
    """The entropy stream of the code asking for it: one stream per call site, so
    that a draw made once per process (a harness seeding itself in its first
    test only) shifts no other draw, and a test replays alone as among others."""
    f = sys._getframe(depth + 1)
    while f.f_back is not None and (f.f_code.co_filename.startswith(_STDLIB) or f.f_code.co_filename == __file__):
        f = f.f_back
    return _world.entropy(f"{f.f_code.co_filename}:{f.f_lineno}")


_real_global_seed = random.seed


def global_seed(a=None, version=2):
    """Under --sim the seed of the global random is the test's: seeding it again
    (as the harnesses do once per process, from crypto-random bytes) is ignored."""


# ---- install ----

_real = {}
LAB_MODULES = ("labrpc", "labgob", "raft", "kvraft", "shardctrler", "shardkv", "persister")


def install(seed, preempt=False):
    """Replace the primitives and make the calling (main) thread the running simulated thread."""
    global _world
    if _world is not None:
        raise RuntimeError("sim: already installed")
    interpose.check_python("--sim")
    early = [m for m in LAB_MODULES if m in sys.modules]
    if early:
        raise RuntimeError(
            f"sim: install before the lab modules are imported ({', '.join(early)} already are): "
            "their module-level locks would be real ones"
        )
    _real.update(
        start_new_thread=_thread.start_new_thread,
        start_joinable_thread=getattr(_thread, "start_joinable_thread", None),
        join=threading.Thread.join,
        is_alive=threading.Thread.is_alive,
    )
    w = World(seed, preempt)
    w.adopt_main(threading.current_thread())
    _world = w
    try:
        _patch_all(_patches.patch)
    except BaseException:
        uninstall()  # leave nothing half-patched behind the error
        raise
    realtime.interrupt_thread = _interrupt_thread
    return w


def _patch_all(patch):
    patch(_thread, "allocate_lock", allocate_lock)
    patch(_thread, "allocate", allocate_lock)
    patch(threading, "Lock", allocate_lock)
    patch(threading, "_allocate_lock", allocate_lock)
    patch(threading, "_CRLock", None)  # threading.RLock() is then the Python one, on our locks
    if sys.version_info >= (3, 13):
        patch(threading, "_start_joinable_thread", _start_joinable_thread)
    else:
        patch(threading, "_start_new_thread", _start_new_thread)
    patch(_thread, "start_new_thread", _start_new_thread)
    patch(_thread, "start_new", _start_new_thread)
    patch(threading.Thread, "join", join)
    patch(threading.Thread, "is_alive", is_alive)
    patch(threading, "_counter", threading._counter)  # begin_test renumbers the threads
    patch(queue, "SimpleQueue", queue._PySimpleQueue)
    patch(time, "sleep", sleep)
    patch(time, "monotonic", monotonic)
    patch(time, "monotonic_ns", monotonic_ns)
    patch(time, "perf_counter", perf_counter)
    patch(time, "perf_counter_ns", perf_counter_ns)
    patch(time, "time", time_)
    patch(time, "time_ns", time_ns)
    # Modules that imported monotonic by name at their own import.
    patch(threading, "_time", monotonic)
    patch(queue, "time", monotonic)
    patch(os, "urandom", urandom)
    patch(random, "_urandom", urandom)  # SystemRandom, and so the secrets module
    patch(random, "Random", Random)
    patch(random, "seed", global_seed)


def uninstall():
    global _world
    _patches.restore()
    realtime.interrupt_thread = None
    _world = None


def begin_test(seed, name="", limit=None, grace=None):
    """Each test starts from the same clock and RNG states, whatever ran before."""
    _world.reset(seed, name, limit, grace)
    _real_global_seed(seed)
    threading._counter = itertools.count(1).__next__  # "Thread-1 (f)" names, as in a fresh process


def _interrupt_thread(thread, callback):
    w = _world
    if w is None:
        return False
    target = next((t for t in w.threads.values() if t.thread is thread), None)
    if target is None:
        return False
    if w.me() is not None:
        w.interrupt(target, callback)
    else:
        w.request(target, callback)
    return True
