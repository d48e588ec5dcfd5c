"""pytest plugin: `--sim` runs the tests on a virtual clock with a seeded scheduler.

    pytest --sim [--sim-seed N] [--sim-preempt] [--sim-check-determinism] [--sim-spin-limit S]

Installed at configure time, before any lab module is imported.  Each test
starts from the same virtual clock and from RNGs seeded with a seed derived
from --sim-seed and the test's name, so a test run alone replays as it ran
among others; a failed test gets the `replay:` command that reruns it.
"""

import hashlib
import os
import random
import shlex
import sys

import pytest

import interpose

from . import realtime  # first: it keeps the real functions before they are replaced
from . import patches
from .scheduler import BusyLoop

DEFAULT_LIMIT = 180.0  # tests/gotest.py's TEST_TIMEOUT, when it is not loaded
SPIN_LIMIT = 10.0  # CPU seconds a simulated thread may run without blocking
RELIABLE_LATENCY_MS = (1, 10)  # one-way message latency on the reliable network, as madsim's default


def pytest_addoption(parser):
    group = parser.getgroup("sim", "simulated time")
    group.addoption("--sim", action="store_true", default=False,
                    help="run the tests on a virtual clock with a seeded scheduler: one thread at a time, "
                         "time jumps when every thread waits")
    group.addoption("--sim-seed", type=int, default=None, metavar="N",
                    help="the seed of the schedule, the network and every RNG (implies --sim; default: a fresh one, printed)")
    group.addoption("--sim-preempt", action="store_true", default=False,
                    help="reschedule at every lock release, notify and thread start (implies --sim)")
    group.addoption("--sim-check-determinism", action="store_true", default=False,
                    help="run each test twice with its seed and fail it at the first scheduling decision "
                         "that differs (implies --sim)")
    group.addoption("--sim-spin-limit", type=float, default=SPIN_LIMIT, metavar="SECONDS",
                    help=f"CPU seconds a thread may run without blocking before it is reported as a busy loop "
                         f"(default {SPIN_LIMIT:g})")


def _wanted(config):
    opt = config.getoption
    return opt("sim") or opt("sim_seed") is not None or opt("sim_preempt") or opt("sim_check_determinism")


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config):
    if not _wanted(config):
        return
    try:
        interpose.check_python("--sim")
    except interpose.UnverifiedPython as e:
        raise pytest.UsageError(str(e)) from None
    if os.environ.get("PYTHONHASHSEED") != "0":
        _rerun_with_fixed_hashes()
    seed = config.getoption("sim_seed")
    if seed is None:
        seed = random.SystemRandom().randrange(2**32)
    plugin = SimPlugin(config, seed)
    config.pluginmanager.register(plugin, "sim")
    try:
        plugin.start()
    except interpose.MissingName as e:
        config.pluginmanager.unregister(plugin)
        raise pytest.UsageError(str(e)) from None


def _rerun_with_fixed_hashes():
    """A seed replays only if str hashes (set and dict orders of strings) are the
    same in every process: start again with PYTHONHASHSEED=0."""
    env = dict(os.environ, PYTHONHASHSEED="0")
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, [sys.executable] + sys.orig_argv[1:], env)


def python_command(root):
    """The running interpreter as a command pasted in root (where node ids start): the
    venv's python, relative to root if inside it, has pytest and msgpack, where a bare
    python3 may not."""
    exe, root = sys.executable, str(root)
    return os.path.relpath(exe, root) if exe.startswith(root + os.sep) else exe


def test_seed(seed, name):
    """The seed of one test: from the run's seed and the test's name alone."""
    digest = hashlib.sha256(f"{seed}:{name}".encode()).digest()
    return int.from_bytes(digest[:8], "big")


class SimPlugin:
    def __init__(self, config, seed):
        self.config = config
        self.seed = seed
        self.preempt = config.getoption("sim_preempt")
        self.check = config.getoption("sim_check_determinism")
        self.spin_limit = config.getoption("sim_spin_limit")
        self.world = None
        self.watchdog = None
        self.first_trace = {}

    def start(self):
        self.world = patches.install(self.seed, self.preempt)
        import labrpc.labrpc as labrpc  # only now: its locks must be simulated ones

        lo, hi = RELIABLE_LATENCY_MS
        labrpc.reliable_latency = lambda: random.randint(lo, hi) / 1000
        self.watchdog = Watchdog(self.world, self.spin_limit)
        self.watchdog.start()

    def pytest_unconfigure(self, config):
        if self.watchdog is not None:
            self.watchdog.stop()
        self.drain()
        patches.uninstall()

    def drain(self):
        """The interpreter's exit joins the non-daemon threads in real time, while
        a simulated one waits for a baton nobody passes any more: give them 5
        virtual seconds to end, and leave those that do not out of that join."""
        import threading

        w = self.world
        for t in sorted(w.threads.values(), key=lambda t: t.seq):
            th = t.thread
            if t is w.main or th is None or th.daemon:
                continue
            th.join(5)
            if not t.done:
                sys.stderr.write(f"sim: non-daemon thread {t.name} still running after the last test\n")
                locks = getattr(threading, "_shutdown_locks", None)  # 3.10-3.12
                if locks is not None:
                    locks.discard(getattr(th, "_tstate_lock", None))

    def pytest_report_header(self, config):
        mode = " with preemption" if self.preempt else ""
        return f"sim: simulated time{mode}, seed {self.seed} (--sim-seed {self.seed} replays this run)"

    def replay_command(self, item):
        args = [python_command(self.config.rootpath), "-m", "pytest", item.nodeid, "--sim", "--sim-seed", str(self.seed)]
        if self.preempt:
            args.append("--sim-preempt")
        if self.config.getoption("race", False):
            args.append("--race")
        return " ".join(shlex.quote(a) for a in args)

    def test_limit(self):
        """gotest's whole-test limit (--test-timeout), which under --sim also
        counts virtual seconds; and the grace after it."""
        limit = self.config.getoption("test_timeout", None)
        if limit is None:
            try:
                ini = self.config.getini("test_timeout")
            except ValueError:  # tests/gotest.py is not loaded
                ini = None
            limit = float(ini) if ini not in (None, "") else DEFAULT_LIMIT
        return limit, max(5.0, min(30.0, limit / 4))

    @pytest.hookimpl(hookwrapper=True, tryfirst=True)
    def pytest_runtest_protocol(self, item, nextitem):
        seed = test_seed(self.seed, item.name)
        limit, grace = self.test_limit()
        if self.check:
            from _pytest.runner import runtestprotocol

            self.world.trace = []
            patches.begin_test(seed, item.nodeid, limit, grace)
            runtestprotocol(item, log=False, nextitem=None)
            self.first_trace[item.nodeid] = self.world.trace
            self.world.trace = []
        patches.begin_test(seed, item.nodeid, limit, grace)
        try:
            if item.get_closest_marker("realtime") is not None:
                with realtime.real():  # see the marker's description in setup.cfg
                    yield
            else:
                yield
        finally:
            self.world.trace = None

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_makereport(self, item, call):
        outcome = yield
        report = outcome.get_result()
        if call.when == "call" and self.check and self.world.trace is not None:
            first = self.first_trace.pop(item.nodeid, None)
            if first is not None:
                diff = first_divergence(first, self.world.trace)
                if diff is not None and not report.failed:
                    report.outcome = "failed"
                    report.longrepr = f"sim: the same seed gave two different runs: {diff}"
        if report.failed:
            line = f"replay: {self.replay_command(item)}"
            report.sections.append(("sim", line))
            sys.stderr.write(f"sim: {item.nodeid} failed; {line}\n")


def first_divergence(a, b):
    """Where two traces of scheduling decisions first differ, in words; None if they do not."""
    for i, (x, y) in enumerate(zip(a, b)):
        if x != y:
            return f"decision {i}: first run {_step(x)}; second run {_step(y)}"
    if len(a) != len(b):
        return f"the first run made {len(a)} scheduling decisions, the second {len(b)}"
    return None


def _step(s):
    now, who, where, nxt = s
    return f"at {(now - patches.BASE_MONOTONIC_NS) / 1e9:.6f} s, {who} switched at {where} to {nxt}"


class Watchdog:
    """A real-time thread that finds a simulated thread which runs without ever
    blocking (the virtual clock cannot move meanwhile) and raises BusyLoop in it."""

    def __init__(self, world, limit):
        self.world = world
        self.limit = limit
        self.stopped = realtime.Event()
        self.thread = realtime.Thread(target=self.run, name="sim-watchdog", daemon=True)

    def start(self):
        self.thread.start()

    def stop(self):
        self.stopped.set()
        self.thread.join()

    def run(self):
        w = self.world
        last = None
        since = 0.0
        period = min(0.2, self.limit / 4)
        while not self.stopped.wait(period):
            t = w.current
            pulse = (w.switches, t)
            if t is None or t.ident is None:
                continue
            cpu = _thread_cpu(t.ident)
            if pulse != last:
                last, since = pulse, cpu
                continue
            if cpu - since >= self.limit:
                self.raise_in(t, cpu - since)
                last = None

    def raise_in(self, t, seconds):
        text = (
            f"sim: thread {t.name} ran {seconds:.1f} CPU seconds without blocking (--sim-spin-limit "
            f"{self.limit:g}): a busy loop, which keeps the virtual clock still.  Wait with a sleep, a "
            f"lock, a condition or an event instead.  Its stack is this exception's traceback."
        )
        exc = type("BusyLoop", (BusyLoop,), {"__init__": lambda self: BusyLoop.__init__(self, text), "__module__": "sim"})
        _async_raise(t.ident, exc)


def _thread_cpu(ident):
    try:
        return realtime.clock_gettime(realtime.pthread_getcpuclockid(ident))
    except (AttributeError, OSError, ValueError):  # not Linux: count real time instead
        return realtime.monotonic()


def _async_raise(ident, exc_type):
    import ctypes

    ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(ident), ctypes.py_object(exc_type))
