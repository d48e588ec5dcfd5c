"""The real clock and real threads, for code that must keep real time under --sim.

Simulated time (see sim/__init__.py) replaces the clock, sleep, locks and
thread start of the whole process.  A few framework pieces must not follow
it: the whole-test limit and the busy-loop watchdog measure real seconds, and
porcupine's budget is real time by definition.  They take what they need from
here, which holds the originals, captured when this module is first imported
(before any patching: the sim plugin imports it first).  Without --sim these
are just the standard functions and classes.
"""

import _thread
import contextlib
import os
import threading
import time

monotonic = time.monotonic
perf_counter = time.perf_counter
sleep = time.sleep
allocate_lock = _thread.allocate_lock
RLock = _thread.RLock  # the C RLock: threading.RLock() may be a simulated one
get_ident = _thread.get_ident
start_new_thread = _thread.start_new_thread
urandom = os.urandom
clock_gettime = getattr(time, "clock_gettime", None)
pthread_getcpuclockid = getattr(time, "pthread_getcpuclockid", None)

_local = threading.local()

# Set by sim.install(): fn(thread, callback) -> bool.  Runs callback(frame) on
# the given simulated thread at once (at its next scheduling point), as a
# signal handler would run; False if that thread is not simulated.
interrupt_thread = None


def in_real_mode():
    """Whether the calling thread creates real locks and threads even under --sim."""
    return getattr(_local, "real", False)


@contextlib.contextmanager
def real():
    """Locks, conditions, events and threads made inside are real ones."""
    was = getattr(_local, "real", False)
    _local.real = True
    try:
        yield
    finally:
        _local.real = was


def Condition(lock=None):
    """A real threading.Condition (on a real RLock unless given a real lock)."""
    with real():
        return threading.Condition(RLock() if lock is None else lock)


def Event():
    """A real threading.Event."""
    with real():
        return threading.Event()


class Thread(threading.Thread):
    """A thread that runs in real time, outside the simulation: watchdogs."""

    sim_exempt = True

    def __init__(self, *args, **kwargs):
        with real():
            super().__init__(*args, **kwargs)

    def start(self):
        with real():
            super().start()
