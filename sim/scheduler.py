"""The virtual clock and the baton: one simulated thread runs at a time.

Every simulated thread is a real OS thread that, when it is not the one
running, waits on its own real `gate` lock.  The running thread holds the
baton until it blocks (a lock, a condition, a sleep, a join); then the
scheduler picks the next thread among the runnable ones with the seeded RNG
and hands it the baton by releasing its gate.  When no thread is runnable the
clock jumps to the earliest pending timeout.  When no thread is runnable and no
timeout is pending, every thread is blocked for good: a deadlock, reported at
once in the main thread (Go: "all goroutines are asleep").

Only the thread holding the baton touches the scheduler's state.  Threads
outside the simulation (watchdogs, a signal handler interrupting a wait) leave
requests in `requests`, which the baton holder takes at its next switch.
"""

import heapq
import itertools
import os
import random
import sys
import threading
import traceback
from pathlib import Path

from . import realtime

# The clocks' readings when each test starts: fixed, so that a seed replays a
# test with the same times, whatever ran before it in the process.
BASE_MONOTONIC_NS = 1_000 * 10**9
BASE_TIME_NS = 1_700_000_000 * 10**9
# A sleep of 0 (or less) still costs this much, so that `while not x: sleep(0)`
# lets the clock reach the timers that would set x.
MIN_SLEEP_NS = 1_000

_SIM_DIR = str(Path(__file__).resolve().parent)


class Deadlock(Exception):
    """Every simulated thread is blocked and no timeout is pending."""


class TestLimit(Exception):
    """A test ran past its whole-test limit in virtual time."""


class BusyLoop(Exception):
    """A simulated thread ran for too long without ever blocking: the virtual
    clock cannot move while it runs."""


class _Sleep:
    def __repr__(self):
        return "sleep"


SLEEP = _Sleep()  # what a sleeping thread waits on


class SimThread:
    """The scheduler's record of one simulated thread."""

    __slots__ = (
        "seq", "name", "ident", "gate", "blocked", "waiting", "deadline", "gen", "woken",
        "pending", "done", "_waiters", "thread",
    )

    def __init__(self, seq, name, thread=None):
        self.seq = seq
        self.name = name
        self.ident = None
        self.gate = realtime.allocate_lock()
        self.gate.acquire()
        self.blocked = False
        self.waiting = None  # what it is blocked on: a SimLock, a SimThread (join) or SLEEP
        self.deadline = None
        self.gen = 0  # bumped at every block and wake; a timer of another generation is stale
        self.woken = False  # the last block ended by a wake-up, not by its timeout
        self.pending = None  # an exception to raise, or a callable to run, when it resumes
        self.done = False
        self._waiters = []  # threads joining this one
        self.thread = thread  # its threading.Thread, if it has one

    def __repr__(self):
        return f"<SimThread {self.name}>"


class World:
    """The simulation: threads, the runnable set, the timers, the clock, the RNG."""

    def __init__(self, seed, preempt=False):
        self.preempt = preempt
        self.threads = {}  # OS thread ident -> SimThread
        self.runnable = []  # in the order they became runnable; picked at random
        self.timers = []  # heap of (deadline, seq, SimThread, gen)
        self.seq = itertools.count(1)
        self.requests = []  # (SimThread, exception or callable) left by threads outside the baton
        self.switches = 0  # scheduling decisions so far: the busy-loop watchdog's pulse
        self.trace = None  # a list of scheduling decisions, when checking determinism
        self.now = BASE_MONOTONIC_NS
        self.main = None
        self.current = None
        # Set by lockwatch/: on_clock(now_ns) runs (in the baton holder) each time the clock
        # moves; explain(ident) says what a blocked thread waits for and who holds it.
        self.on_clock = None
        self.explain = None
        self.reset(seed)

    def reset(self, seed, name="", limit=None, grace=None):
        """Start a test: the clock back to its base, the RNGs from the seed.  A
        test still running `limit` virtual seconds later fails, with every
        thread's stack (gotest's whole-test limit, on the virtual clock: a hung
        test whose threads still poll never runs out of timeouts); one still
        running `grace` seconds after that ends the process, as gotest does."""
        self.test = name
        self.limit_fired = False
        self.limit_at = None if not limit else BASE_MONOTONIC_NS + int(limit * 10**9)
        self.abort_at = None if not limit else self.limit_at + int(grace * 10**9)
        self.limit = limit
        self.grace = grace
        shift = BASE_MONOTONIC_NS - self.now
        if shift and self.timers:  # threads that outlived a test keep their relative timeouts
            self.timers = [(d + shift, s, t, g) for d, s, t, g in self.timers]
            heapq.heapify(self.timers)
        self.now = BASE_MONOTONIC_NS
        self.seed = seed
        self.rng = random.Random(seed)
        self._entropy = {}  # os.urandom, secrets and unseeded Randoms: a stream per call site

    def entropy(self, site):
        """The random stream of one call site in this test."""
        stream = self._entropy.get(site)
        if stream is None:
            stream = self._entropy[site] = random.Random(f"{self.seed}:{site}")
        return stream

    # ---- the threads ----

    def adopt_main(self, thread):
        """Make the calling thread (the main thread) the first simulated one, running."""
        me = SimThread(0, thread.name, thread)
        me.gate.release()
        me.gate.acquire()
        me.ident = realtime.get_ident()
        self.threads[me.ident] = me
        self.main = self.current = me
        return me

    def me(self):
        """The calling thread's SimThread, or None outside the simulation."""
        return self.threads.get(realtime.get_ident())

    def new_thread(self, name, thread=None):
        t = SimThread(next(self.seq), name, thread)
        self.runnable.append(t)
        return t

    def enter(self, t):
        """First thing a new OS thread does: register, then wait for the baton."""
        t.ident = realtime.get_ident()
        self.threads[t.ident] = t
        self._wait_gate(t)
        self._resume(t)

    def exit(self, t):
        """Last thing a simulated thread does: wake its joiners, hand the baton on."""
        t.done = True
        for j in t._waiters:
            self.wake(j)
        t._waiters.clear()
        self.threads.pop(t.ident, None)
        nxt = self._pick(t)
        self.current = nxt
        nxt.gate.release()

    # ---- blocking and waking ----

    def block(self, me, waitable, deadline):
        """Block `me` (the caller) on `waitable` until woken, or until the clock
        reaches `deadline` (None: no timeout).  True if woken, False otherwise
        (timed out, or resumed to run a pending callable)."""
        __tracebackhide__ = True  # pytest: a failure raised here is shown at the caller
        me.blocked = True
        me.waiting = waitable
        me.gen += 1
        me.woken = False
        if deadline is not None:
            heapq.heappush(self.timers, (deadline, next(self.seq), me, me.gen))
        self._switch(me)
        return me.woken

    def wake(self, t):
        """Make blocked thread t runnable; whoever woke it has already taken it
        off the waitable's waiter list."""
        t.blocked = False
        t.waiting = None
        t.gen += 1
        t.woken = True
        self.runnable.append(t)

    def yield_(self, me):
        """Let the scheduler pick again, `me` among the candidates."""
        self.runnable.append(me)
        self._switch(me)

    def preempt_point(self, me):
        """Under --sim-preempt: a lock release, notify or thread start reschedules."""
        if self.runnable and me is not None and not me.blocked:
            self.yield_(me)

    def interrupt(self, t, what):
        """Have t raise `what` (an exception) or run it (a callable taking the
        frame) as soon as it runs; a blocked t is unblocked for it.  Only the
        baton holder calls this; other threads use request()."""
        if t.done:
            return
        t.pending = what
        if t.blocked:
            self._unwait(t)
            t.woken = False
            self.runnable.append(t)

    def request(self, t, what):
        """interrupt(), from a thread that does not hold the baton."""
        self.requests.append((t, what))

    # ---- the switch ----

    def _switch(self, me):
        __tracebackhide__ = True  # pytest: a failure raised here is shown at the caller
        nxt = self._pick(me)
        if nxt is not me:
            self.current = nxt
            nxt.gate.release()
            self._wait_gate(me)
        self._resume(me)

    def _wait_gate(self, me):
        while True:
            try:
                me.gate.acquire()
                return
            except BaseException as e:
                # A signal handler raised in this waiting thread (Ctrl-C, the
                # real-time limit): the baton holder delivers it at its next switch.
                self.requests.append((me, e))

    def _resume(self, me):
        __tracebackhide__ = True  # pytest: a failure raised here is shown at the caller
        self.current = me
        what = me.pending
        if what is not None:
            me.pending = None
            if isinstance(what, BaseException):
                raise what
            what(sys._getframe(2))

    def _pick(self, me):
        """The next thread to run; advances the clock if none is runnable."""
        __tracebackhide__ = True  # pytest: a failure raised here is shown at the caller
        self.switches += 1
        while True:
            if self.requests:
                self._take_requests()
            runnable = self.runnable
            if runnable:
                n = len(runnable)
                t = runnable.pop(self.rng.randrange(n)) if n > 1 else runnable.pop()
                if self.trace is not None:
                    self.trace.append((self.now, me.name, _where(me), t.name))
                return t
            if not self._fire_timer():
                self._deadlock()

    def _take_requests(self):
        while self.requests:
            t, what = self.requests.pop(0)
            self.interrupt(t, what)

    def _fire_timer(self):
        timers = self.timers
        while timers:
            deadline, _, t, gen = heapq.heappop(timers)
            if t.gen != gen:
                continue  # woken or interrupted since it set this timeout
            if self.limit_at is not None and deadline >= self.limit_at:
                if self._past_limit(deadline, t, gen):
                    return True
            moved = deadline > self.now
            if moved:
                self.now = deadline
            self._unwait(t)
            t.woken = False
            self.runnable.append(t)
            if moved and self.on_clock is not None:
                self.on_clock(deadline)
            return True
        return False

    def _past_limit(self, deadline, t, gen):
        """The clock is about to pass the test's limit (or its grace): fail the test
        in the main thread, or end the process.  True if the main thread was
        made runnable instead of timer (deadline, t), which is put back."""
        if deadline >= self.abort_at:
            text = self.describe(
                f"sim: {self.test} is still running {self.grace:g} virtual s after it failed at the "
                f"whole-test limit of {self.limit:g} s; its teardown is stuck too.  Every thread now:"
            )
            try:
                os.write(2, (text + "\nsim: aborting the test run (exit status 1), as go test does "
                             "after its timeout.\n").encode("utf-8", "replace"))
            finally:
                os._exit(1)
        if self.limit_fired:
            return False
        self.limit_fired = True
        self.now = max(self.now, self.limit_at)
        heapq.heappush(self.timers, (deadline, next(self.seq), t, gen))
        report = TestLimit(self.describe(
            f"sim: {self.test} did not end within the whole-test limit of {self.limit:g} s of virtual "
            f"time (--test-timeout; go test ends a binary after 10 minutes and prints every goroutine).  "
            f"Every thread at the limit:"
        ))
        main = self.main
        if main is None or main.done:
            return False
        self.interrupt(main, report)
        return True

    def _unwait(self, t):
        w = t.waiting
        if w is not None and w is not SLEEP:
            try:
                w._waiters.remove(t)
            except ValueError:
                pass
        t.blocked = False
        t.waiting = None
        t.gen += 1

    def _deadlock(self):
        """No thread can ever run again: fail the test in the main thread."""
        report = Deadlock(self.describe(
            "sim: deadlock: every thread is blocked and no timeout is pending "
            "(in Go: fatal error: all goroutines are asleep - deadlock!)"
        ))
        main = self.main
        if main is None or main.done or not main.blocked:
            raise report  # nothing to hand it to: raise it here
        self.interrupt(main, report)

    def _deadline_of(self, t):
        """When blocked thread t's timeout expires; None if it has none."""
        if not t.blocked:
            return None
        return min((d for d, _, tt, g in self.timers if tt is t and g == t.gen), default=None)

    def describe(self, title):
        """Every simulated thread: what it is blocked on, and its stack."""
        frames = sys._current_frames()
        lines = [title, ""]
        for t in sorted(self.threads.values(), key=lambda t: t.seq):
            until = self._deadline_of(t)
            until = "" if until is None else f" until {(until - BASE_MONOTONIC_NS) / 1e9:.3f} s"
            if t.waiting is SLEEP:
                what = f"sleeping{until}"
            elif isinstance(t.waiting, SimThread):
                what = f"waiting for thread {t.waiting.name} to end{until}"
            elif t.waiting is not None:
                what = f"waiting for a lock (a Lock, or a Condition, Event or Queue built on one){until}"
                known = self.explain(t.ident) if self.explain is not None else None
                if known:
                    what = f"{known}{until}"
            elif t in self.runnable:
                what = "runnable"
            else:
                what = "running"
            lines.append(f"Thread {t.name}{' (main)' if t is self.main else ''}: {what}")
            frame = frames.get(t.ident)
            if frame is not None:
                lines.append("".join(traceback.format_list(own_frames(frame))).rstrip())
            lines.append("")
        return "\n".join(lines).rstrip()


def own_frames(frame):
    """A stack without the simulator's own frames, and without pytest's above the test."""
    summary = traceback.extract_stack(frame)
    start = 0
    for i, fs in enumerate(summary):
        if "/_pytest/" in fs.filename or "/pluggy/" in fs.filename:
            start = i + 1
    return [
        fs for fs in summary[start:]
        if not fs.filename.startswith(_SIM_DIR)
        and "/lockwatch/" not in fs.filename  # a LabLock's own frames: the report says what it waits for
        and not (fs.filename == threading.__file__ and fs.name in ("_bootstrap", "_bootstrap_inner", "run"))
    ]


def _where(t):
    """Where thread t (the caller) is: its innermost frame outside the simulator and threading."""
    f = sys._getframe(2)
    while f is not None and (f.f_code.co_filename.startswith(_SIM_DIR) or f.f_code.co_filename.endswith(("threading.py", "queue.py"))):
        f = f.f_back
    if f is None:
        return "?"
    return f"{Path(f.f_code.co_filename).name}:{f.f_lineno}"
