"""pytest plugin: the lock watchdog, on for every test (--no-lockwatch turns it off).

Configured last (after --sim and --race have put their lock factories in
place), so that a lab lock wraps theirs.  In real time a thread outside the
simulation looks at the wait-for graph every PERIOD seconds; under --sim the
scheduler asks it each time the virtual clock moves, so a deadlock is found at
the same virtual time for a given seed.  A deadlock, or a self-deadlock raised
in the thread that would hang, fails the running test through tests/gotest.py.

A lab lock held across a blocking call fails the test under --race and --sim
(where nothing is left to chance); otherwise each such pair of places is one
warning line at the end of the test.  Held across Thread.start() it is always
a warning: a delay on a loaded machine, never a hang.  A lab lock held 50 ms or
more is drawn on the timeline page.
"""

import sys
import threading
import time

import pytest

import interpose
import timeline
from sim import realtime
from sim.scheduler import BASE_MONOTONIC_NS

from . import core

PERIOD = 0.5  # seconds between two looks at the graph
LAB_PACKAGES = ("raft", "kvraft", "shardctrler", "shardkv")


def pytest_addoption(parser):
    group = parser.getgroup("lockwatch", "lock watchdog")
    group.addoption(
        "--no-lockwatch", action="store_true", default=False,
        help="turn off the lock watchdog (lab locks that know their owner; deadlock and "
             "lock-held-across-a-blocking-call reports)",
    )
    group.addoption(
        "--lockwatch-held", choices=("auto", "fail", "warn"), default="auto",
        help="a lab lock held across a blocking call: fail the test, or warn at its end "
             "(default auto: fail under --sim and --race, warn otherwise)",
    )


@pytest.hookimpl(trylast=True)
def pytest_configure(config):
    if config.getoption("no_lockwatch"):
        return
    config.pluginmanager.register(LockWatch(config), "lockwatch")


def _fail(text):
    """Fail the running test with text, as an exception in one of its threads does."""
    gotest = sys.modules.get("tests.gotest")
    if gotest is not None and gotest.report_problem(text):
        return
    sys.stderr.write(text + "\n")


class LockWatch:
    """The plugin while it is on: the lock factory, the hooks and the watch."""

    def __init__(self, config):
        self.config = config
        sim = config.pluginmanager.get_plugin("sim")
        self.world = sim.world if sim is not None else None
        held = config.getoption("lockwatch_held")
        self.strict = held == "fail" or (held == "auto" and (self.world is not None or config.getoption("race", False)))
        self.detector = core.Detector()
        self.warnings = {}  # key -> text, for the running test
        self.chans = set()  # the raft.Chan classes wrapped
        self.next_check = 0
        self.t0 = 0.0  # when the running test started, on the clock look() is given
        self.stopped = realtime.Event()
        self.thread = None
        self.sleep = time.sleep
        self.patches = interpose.Patches("lockwatch plugin")

        import labrpc.labrpc as labrpc  # only now: under --sim its locks must be simulated ones

        core.install()
        labrpc.call_waits = core.call_waits
        core.wrap_call(labrpc.ClientEnd)
        core.on_held_across = self.held_across
        core.on_long_hold = self.long_hold
        self.patches.patch(time, "sleep", core.checked_sleep(self.sleep))
        self.patches.patch(threading.Thread, "start", core.checked_start(threading.Thread.start))
        core.sim_world = self.world
        if self.world is not None:
            self.world.on_clock = self.on_clock
            self.world.explain = core.describe_wait
        else:
            self.thread = realtime.Thread(target=self.run, name="lockwatch", daemon=True)
            self.thread.start()

    def pytest_unconfigure(self, config):
        import labrpc.labrpc as labrpc

        self.stopped.set()
        if self.thread is not None:
            self.thread.join()
        if self.world is not None:
            self.world.on_clock = self.world.explain = None
        self.patches.restore()
        core.unwrap_call(labrpc.ClientEnd)
        for chan in self.chans:
            core.unwrap_chan(chan)
        labrpc.call_waits = None
        core.on_held_across = None
        core.on_long_hold = None
        core.sim_world = None
        core.uninstall()

    def pytest_report_header(self, config):
        mode = "held across a blocking call fails the test" if self.strict else "held across a blocking call: a warning"
        return f"lockwatch: on (lab locks know their owner; a wait-for cycle of {core.CYCLE_SECONDS:g} s is a deadlock; {mode})"

    # ---- the two clocks ----

    def run(self):
        while not self.stopped.wait(PERIOD):
            self.look(realtime.monotonic())

    def on_clock(self, now_ns):
        if now_ns >= self.next_check:
            self.next_check = now_ns + int(PERIOD * 1e9)
            self.look(now_ns / 1e9)

    def look(self, now):
        report = self.detector.check(now)
        if report is not None:
            clock = "virtual s" if self.world is not None else "s"
            report = report.replace("deadlock:", f"deadlock ({now - self.t0:.1f} {clock} into the test):", 1)
            sys.stderr.write(f"{report.splitlines()[0]}\n")
            _fail(report)

    # ---- reports ----

    def held_across(self, text, key, soft=False):
        if key in self.warnings:
            return
        self.warnings[key] = (text, soft)
        if self.strict and not soft:
            _fail(text)

    @staticmethod
    def long_hold(lock, taken, held, frame):
        # Only on the timeline page: a loaded machine stops a thread that holds a lock too.
        timeline.lock_held(
            core.lock_lane(lock), taken, held,
            f"{core.lock_name(lock)} held {held * 1000:.0f} ms by {core.thread_name(lock.owner)}: "
            f"taken at {core.taken_at(lock)}, let go at {core.lab_place(frame)}",
        )

    @pytest.hookimpl(hookwrapper=True, tryfirst=True)
    def pytest_runtest_protocol(self, item, nextitem):
        for name, module in list(sys.modules.items()):
            if name.partition(".")[0] in LAB_PACKAGES and isinstance(getattr(module, "Chan", None), type):
                core.wrap_chan(module.Chan)
                self.chans.add(module.Chan)
        core.reset()
        self.detector.reset()
        self.warnings = {}
        self.next_check = 0
        self.t0 = realtime.monotonic() if self.world is None else BASE_MONOTONIC_NS / 1e9
        yield
        for text, soft in self.warnings.values():
            if soft or not self.strict:
                sys.stderr.write(f"{text.replace('lockwatch: ', 'lockwatch: warning: ', 1)}\n")
