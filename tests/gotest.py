"""What `go test` does that pytest does not, for every test under tests/.

1. A panic in any goroutine ends a Go test binary: FAIL.  Here an exception
   that escapes any thread (a Raft ticker or applier, a labrpc handler, a
   kvserver thread) fails the running test, naming the thread and showing its
   traceback.  The test's main thread is interrupted at once, by a signal whose
   handler raises the failure, so the test does not run on for seconds; the
   harness's cfg.cleanup() then runs as usual, and is never interrupted itself.
   An exception after a test ended, in a thread that outlived it, fails the
   test running then (or, after the last test, the session) and says which
   test started the thread.

2. `go test` kills a test binary after 10 minutes and prints every goroutine's
   stack.  Here every test has a whole-test limit, --test-timeout (default
   TEST_TIMEOUT seconds; 0 turns it off).  At the limit every thread's stack is
   printed and the test fails.  If the test has still not ended GRACE seconds
   later (its cleanup is blocked too), the stacks are printed again and the
   pytest process exits with status 1, as the Go binary does.

Where signals cannot reach the main thread (Windows), the failure is reported
when the test function returns, and a hang ends the process at the limit.
"""

import dataclasses
import os
import re
import signal
import sys
import threading
import traceback
import weakref

import pytest

# The limit is real time, and the watch thread runs outside simulated time (--sim).
from sim import realtime

# No passing test comes near this: the harnesses fail a test that runs longer than
# 120 s, and the longest test takes about 45 s on two loaded cores.  Go's limit,
# 10 minutes, is for the whole binary.
TEST_TIMEOUT = 180.0
SIM_REAL_LIMIT_FACTOR = 4  # under --sim, the real-time backstop is this many times the limit

# Harness functions the interruption never lands in, nor in what they call: they
# start or stop servers and clerks, and a half-done one would leave threads
# running after the test.  The failure waits until the main thread is out of them.
PROTECTED_FUNCTIONS = frozenset({
    "cleanup", "make_config", "start1", "crash1",
    "StartServer", "ShutdownServer", "makeClient", "deleteClient",
    # Lab 4's harness (tests/shardkv/config.py) starts and stops whole groups and controllers.
    "StartGroup", "ShutdownGroup", "StartCtrlerserver",
})
RETRY_SECONDS = 0.05  # how soon a deferred interruption is tried again

_SIGNAL = getattr(signal, "SIGUSR1", None)

# A test reports at most this many exceptions in threads in full.
MAX_PROBLEMS = 10


def grace_seconds(limit):
    """How long a test may take to end after it failed at the limit."""
    return max(5.0, min(30.0, limit / 4))


@dataclasses.dataclass
class Problem:
    """A failure found outside the test's main thread."""

    text: str
    shown: bool = False  # already in a failure message


class Watch:
    """The session's state: problems found, the running test, the timer."""

    def __init__(self, config, limit):
        self.config = config
        self.limit = limit
        # Reentrant: the signal handler takes it in the main thread, which may hold it.
        self.mu = realtime.RLock()
        self.cond = realtime.Condition(self.mu)
        self.problems = []  # Problem, for the test running now (or the next one)
        self.nodeid = None  # the test running now
        self.interruptible = False  # the main thread runs the test function
        self.deadline = None  # when the running test reaches its limit
        self.deferred = False  # the main thread was in a protected function when signalled
        self.closed = False
        self.main = threading.main_thread()
        # Threads that outlived a test, and which test that was.
        self.origin = weakref.WeakKeyDictionary()
        self.baseline = set(threading.enumerate())
        self.prev_excepthook = None
        self.prev_handler = None
        self.thread = None

    # ---- setup and teardown of the session ----

    def start(self):
        self.prev_excepthook = threading.excepthook
        threading.excepthook = self.excepthook
        if _SIGNAL is not None and hasattr(signal, "pthread_kill"):
            self.prev_handler = signal.signal(_SIGNAL, self.on_signal)
        self.thread = realtime.Thread(target=self.run, name="gotest-watch", daemon=True)
        self.thread.start()
        self.baseline.add(self.thread)

    def stop(self):
        with self.mu:
            self.closed = True
            self.cond.notify_all()
        if self.thread is not None:
            self.thread.join()
        threading.excepthook = self.prev_excepthook
        if self.prev_handler is not None:
            signal.signal(_SIGNAL, self.prev_handler)

    # ---- 1. exceptions in threads ----

    def excepthook(self, args):
        if issubclass(args.exc_type, SystemExit):
            return  # threading's own hook ignores it too (lockwatch ends deadlocked threads so)
        try:
            thread = args.thread
            name = thread.name if thread is not None else "<unknown thread>"
            where = ""
            origin = self.origin.get(thread) if thread is not None else None
            if origin is not None and origin != self.nodeid:
                where = f" (a thread started during {origin}, still running after that test ended)"
            tb = "".join(traceback.format_exception(args.exc_type, args.exc_value, args.exc_traceback))
            if sys.version_info < (3, 11):  # 3.10's traceback does not print an exception's notes
                tb += "".join(f"{n}\n" for n in getattr(args.exc_value, "__notes__", ()))
            text = (
                f"Exception in thread {name}{where}; in Go a panic in any goroutine fails the test:\n"
                f"{tb.rstrip()}"
            )
            note(f"exception in thread {name}: {args.exc_type.__name__}: {args.exc_value}")
            self.add_problem(text)
        except BaseException:
            self.prev_excepthook(args)
            raise

    def add_problem(self, text):
        with self.mu:
            if len(self.problems) < MAX_PROBLEMS:
                self.problems.append(Problem(text))
            elif len(self.problems) == MAX_PROBLEMS:
                self.problems.append(Problem(f"(more exceptions in threads follow; only the first {MAX_PROBLEMS} are shown)"))
            interrupt = self.interruptible
        if interrupt:
            self.interrupt_main()

    def interrupt_main(self):
        if self.prev_handler is None or threading.current_thread() is self.main:
            return
        # Under --sim the main thread waits for its turn, not in a system call:
        # the scheduler runs the handler there, at the same point for a given seed.
        hook = realtime.interrupt_thread
        if hook is not None and hook(self.main, lambda frame: self.on_signal(_SIGNAL, frame)):
            return
        try:
            signal.pthread_kill(self.main.ident, _SIGNAL)
        except (OSError, ProcessLookupError):
            pass

    def on_signal(self, signum, frame):
        """Runs in the main thread: raise the problems found, unless the test
        function is not running or the main thread is in a harness cleanup."""
        with self.mu:
            if not self.interruptible:
                return
            new = [p for p in self.problems if not p.shown]
            if not new:
                return
            f = frame
            while f is not None:
                if f.f_code.co_name in PROTECTED_FUNCTIONS:
                    self.deferred = True  # the watch thread tries again soon
                    self.cond.notify_all()
                    return
                f = f.f_back
            for p in new:
                p.shown = True
            self.interruptible = False  # once is enough; the rest go into the report
        raise pytest.fail.Exception("\n\n".join(p.text for p in new), pytrace=False)

    # ---- 2. the whole-test limit ----

    def run(self):
        """The watch thread: ends tests at their limit, and hands the main thread
        problems it could not take while in a protected function."""
        with self.mu:
            while not self.closed:
                now = realtime.monotonic()
                if self.deadline is not None and now >= self.deadline:
                    nodeid, self.deadline = self.nodeid, None
                    self.mu.release()
                    try:
                        self.on_limit(nodeid)
                    finally:
                        self.mu.acquire()
                    continue
                wait = None if self.deadline is None else self.deadline - now
                if self.deferred:
                    self.deferred = False
                    if self.interruptible:
                        self.interrupt_main()  # the handler defers again if still protected
                    wait = RETRY_SECONDS if wait is None else min(wait, RETRY_SECONDS)
                self.cond.wait(wait)

    def on_limit(self, nodeid):
        """The running test reached its limit: fail it, and if it cannot end, end the process."""
        text = (
            f"{nodeid} did not end within the whole-test limit of {self.limit:g} s "
            f"(--test-timeout; go test ends a binary after 10 minutes and prints every goroutine).\n"
            f"{self.sim_hint(nodeid)}"
            f"The stacks of all threads at the limit:\n\n{format_stacks()}"
        )
        note(f"{nodeid} reached the whole-test limit of {self.limit:g} s; failing it")
        self.add_problem(text)
        grace = grace_seconds(self.limit)
        end = realtime.monotonic() + grace
        with self.mu:
            while self.nodeid == nodeid and not self.closed:
                left = end - realtime.monotonic()
                if left <= 0:
                    break
                self.cond.wait(left)
            stuck = self.nodeid == nodeid and not self.closed
        if stuck:
            self.abort(nodeid, grace)

    def sim_hint(self, nodeid):
        """How to see the same hang in seconds: simulated time reports a deadlock at once,
        with what each thread waits for, and counts the limit in virtual seconds."""
        if self.config.pluginmanager.get_plugin("sim") is not None:
            return ""
        from sim.pytest_plugin import python_command  # here: a plugin module, loaded after us

        python = python_command(self.config.rootpath)
        return f"To see it in seconds, run it on simulated time: {python} -m pytest {nodeid} --sim\n"

    def abort(self, nodeid, grace):
        """The test is stuck past its limit and grace: print everything and exit, like Go."""
        capman = self.config.pluginmanager.getplugin("capturemanager")
        out = err = ""
        if capman is not None:
            try:
                capman.suspend_global_capture(in_=True)
                out, err = capman.read_global_capture()
            except Exception:
                pass
        with self.mu:
            problems = [p.text for p in self.problems if not p.shown]
        parts = []
        if out:
            parts.append(f"---- captured stdout of {nodeid} ----\n{out}")
        if err:
            parts.append(f"---- captured stderr of {nodeid} ----\n{err}")
        parts.extend(problems)
        parts.append(
            f"FAIL: {nodeid} is still running {grace:g} s after it failed at the whole-test limit "
            f"of {self.limit:g} s; its teardown is stuck too.  The stacks of all threads now:\n\n"
            f"{format_stacks()}\n"
            f"gotest: aborting the test run (exit status 1), as go test does after its timeout."
        )
        text = "\n\n".join(parts) + "\n"
        try:
            os.write(2, text.encode("utf-8", "replace"))
        except OSError:
            pass
        os._exit(1)

    # ---- per test ----

    def begin_test(self, nodeid):
        with self.mu:
            self.nodeid = nodeid
            if self.limit > 0:
                self.deadline = realtime.monotonic() + self.limit
            self.cond.notify_all()

    def end_test(self, nodeid):
        with self.mu:
            self.nodeid = None
            self.deadline = None
            self.cond.notify_all()
        for t in threading.enumerate():
            if t not in self.baseline and t not in self.origin:
                self.origin[t] = nodeid

    def set_interruptible(self, yes):
        with self.mu:
            self.interruptible = yes
            pending = yes and any(not p.shown for p in self.problems)
        if pending:
            self.interrupt_main()

    def take_problems(self):
        """Every problem of the current test so far, and whether any was not shown yet."""
        with self.mu:
            problems, self.problems = self.problems, []
        return problems


def leftover_threads_message(names, seconds):
    """What the harnesses' cleanup() reports when threads of a finished test are
    still alive: which ones, and what to look for.  The test's own checks may
    all have passed (and printed "... Passed"): this is a separate failure."""
    return (
        f"{len(names)} thread(s) still running {seconds:.0f} s after cleanup killed every server: "
        f"{', '.join(names)}.  Every thread a server starts must end once its Kill() is called: "
        "look for a thread that does not check killed(), or one blocked for good "
        "(reading applyCh, which the service must close in Kill(), waiting on a lock "
        "or a condition nobody signals, or a clerk call that retries forever)."
    )


def report_leftover_threads(names, seconds):
    """For a cleanup() running because the test already failed: name the leftover
    threads in that failure too, as a note under its message, and on stderr now."""
    msg = "also: " + leftover_threads_message(names, seconds)
    exc = sys.exc_info()[1]
    if isinstance(exc, pytest.fail.Exception) and not exc.pytrace:
        exc.msg += "\n" + msg  # pytest shows only the message of such a failure, not its notes
    elif exc is not None:
        exc.__notes__ = [*getattr(exc, "__notes__", ()), msg]  # add_note's list; add_note is 3.11's
    note(msg)


def report_problem(text):
    """Fail the running test with text, as an exception in one of its threads does
    (lockwatch/ reports deadlocks so).  False if no test session is watched."""
    if _watch is None:
        return False
    _watch.add_problem(text)
    return True


def note(line):
    """One line on stderr as things happen (a single write: threads print at once)."""
    try:
        sys.stderr.write(f"gotest: {line}\n")
        sys.stderr.flush()
    except (OSError, ValueError):
        pass


def format_stacks():
    """Every thread's stack, with the threads' names: the main thread first, then the lab's
    threads (a frame in a lab package), then the rest.  Threads with the same stack are
    shown once ("60 threads like this: raft*-send-*"), so a hang's dump stays short."""
    frames = sys._current_frames()
    threads = {t.ident: t for t in threading.enumerate()}
    main = threading.main_thread().ident
    me = threading.get_ident()

    waits = _lockwatch_waits()
    groups = {}  # stack text -> names of the threads showing it
    parts = []
    for ident, frame in frames.items():
        if ident == me:
            continue
        t = threads.get(ident)
        name = t.name if t is not None else f"<thread {ident}>"
        own = _own_frames(frame)
        stack = "".join(traceback.format_list(own)).rstrip()
        wait = waits.get(ident)  # what it waits for and who holds it, if lockwatch knows
        if wait:
            stack += f"\n  ({wait})"
        if ident == main:
            parts.append((0, "", f"Thread {name} (main):\n{stack}"))
            continue
        lab = any(_LAB_FILES.search(fs.filename) for fs in own)
        groups.setdefault((not lab, stack), []).append(name)
    for (not_lab, stack), names in groups.items():
        names.sort()
        parts.append((1 + not_lab, names[0], f"{_threads_label(names)}:\n{stack}"))
    return "\n\n".join(text for *_, text in sorted(parts))


def _lockwatch_waits():
    core = sys.modules.get("lockwatch.core")
    return core.describe_waits() if core is not None else {}


_LAB_FILES = re.compile(r"[/\\](raft|kvraft|shardctrler|shardkv)[/\\][^/\\]+\.py$")


def _threads_label(names):
    if len(names) == 1:
        return f"Thread {names[0]}"
    masked = {re.sub(r"\d+", "*", n) for n in names}
    if len(masked) == 1:
        pattern = masked.pop()
    else:
        prefix = os.path.commonprefix(names)
        pattern = f"{prefix}*" if prefix else ", ".join(names[:3]) + ", ..."
    return f"{len(names)} threads like this: {pattern}"


def _own_frames(frame):
    """A thread's stack without pytest's and pluggy's frames above the test function."""
    summary = traceback.extract_stack(frame)
    start = 0
    for i, fs in enumerate(summary):
        if _RUNNER_FILES.search(fs.filename):
            start = i + 1
    return [fs for fs in summary[start:] if not _WATCH_FILES.search(fs.filename)]


_RUNNER_FILES = re.compile(r"[/\\](_pytest|pluggy)[/\\]|^<frozen runpy>$|[/\\]pytest[/\\]__main__\.py$")
_WATCH_FILES = re.compile(r"[/\\]lockwatch[/\\]")  # its LabLock's frames: the wait line says the rest


# ---- pytest hooks ----

_watch = None


def pytest_addoption(parser):
    parser.addoption(
        "--test-timeout", type=float, default=None, metavar="SECONDS",
        help=f"whole-test limit: a test still running after it fails with every thread's stack "
             f"(default {TEST_TIMEOUT:g}; 0 turns it off)",
    )
    parser.addini("test_timeout", f"whole-test limit in seconds (default {TEST_TIMEOUT:g})", default=None)


@pytest.hookimpl(trylast=True)
def pytest_configure(config):
    global _watch
    limit = config.getoption("--test-timeout")
    if limit is None:
        ini = config.getini("test_timeout")
        limit = float(ini) if ini not in (None, "") else TEST_TIMEOUT
    if limit < 0:
        raise pytest.UsageError(f"--test-timeout must be 0 (off) or positive, not {limit:g}")
    if config.pluginmanager.get_plugin("sim") is not None and limit > 0:
        # Under --sim the limit counts virtual seconds (sim/), whatever the machine's load;
        # in real time it is only a backstop for what the simulation cannot see (a thread
        # blocked outside it), and a CPU-bound simulated test on a loaded machine can take
        # more than the limit in real seconds.
        limit *= SIM_REAL_LIMIT_FACTOR
    _watch = Watch(config, limit)
    _watch.start()


def pytest_unconfigure(config):
    global _watch
    if _watch is not None:
        _watch.stop()
        _watch = None


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    _watch.begin_test(item.nodeid)
    try:
        yield
    finally:
        _watch.end_test(item.nodeid)


@pytest.hookimpl(hookwrapper=True)
def pytest_pyfunc_call(pyfuncitem):
    _watch.set_interruptible(True)
    try:
        yield
    finally:
        _watch.set_interruptible(False)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    problems = _watch.take_problems()
    if not problems:
        return
    new = "\n\n".join(p.text for p in problems if not p.shown)
    if report.passed or report.skipped:
        report.outcome = "failed"
        report.longrepr = "\n\n".join(p.text for p in problems)
    elif new:
        report.sections.append((f"Exceptions in other threads ({call.when})", new))


_late = []  # problems found after the last test's report


@pytest.hookimpl(tryfirst=True)
def pytest_sessionfinish(session):
    if _watch is not None:
        _late.extend(_watch.take_problems())
    if _late:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter, exitstatus):
    if _late:
        terminalreporter.section("exceptions in threads after the last test", sep="=", red=True)
        for p in _late:
            terminalreporter.line(p.text)
    _say_what_selected_nothing(terminalreporter, exitstatus)


def _say_what_selected_nothing(terminalreporter, exitstatus):
    """pytest reports a -k/-m that matches nothing only as "N deselected" and exit
    status 5; name the pattern, so that a typo reads as one."""
    if exitstatus != pytest.ExitCode.NO_TESTS_COLLECTED:
        return
    config = terminalreporter.config
    selectors = [
        f"{opt} {value!r}"
        for opt, value in (("-k", config.getoption("keyword", "")), ("-m", config.getoption("markexpr", "")))
        if value
    ]
    if not selectors and not terminalreporter.stats.get("deselected"):
        return
    what = " and ".join(selectors) or "the selection"
    terminalreporter.write_line(
        f"no test matches {what} (test names are the Go names, e.g. -k 2A or -k TestBackup2B)",
        red=True, bold=True,
    )
