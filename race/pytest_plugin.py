"""pytest plugin: `--race` runs the lab tests under the lockset race detector.

With --race, before any test module is imported, the detector's lock and
hand-off hooks are installed, the classes of the lab packages (LAB_PACKAGES)
are instrumented and raft.Chan becomes a happens-before edge.  A test during
whose setup, body or teardown a race is found fails with the report(s); each
report is also printed to stderr the moment the race is seen.
"""

import _thread
import importlib
import sys
import threading

import pytest

import interpose

LAB_PACKAGES = ("raft", "kvraft", "shardctrler", "shardkv")


def pytest_addoption(parser):
    group = parser.getgroup("race", "race detector")
    group.addoption(
        "--race",
        action="store_true",
        default=False,
        help="fail a test when a field of a Raft peer, kvserver or other lab object is "
        "written by one thread and touched by another with no lock in common",
    )


def pytest_configure(config):
    if not config.getoption("race"):
        return
    # Under --sim, the sim plugin's configure runs first (tryfirst) and has replaced the lock
    # factory, so the tracked locks made from here on wrap simulated locks.
    from . import detector

    try:
        detector.install()
        self_test()
    except (interpose.UnverifiedPython, interpose.MissingName, SelfTestFailed) as e:
        detector.uninstall()
        raise pytest.UsageError(str(e)) from None
    instrument_labs()
    config.pluginmanager.register(_RacePlugin(), "race-detector")


class SelfTestFailed(RuntimeError):
    pass


class _Planted:
    """The self-test's object: one field, written by two threads with no lock."""

    def __init__(self):
        self.field = 0


def self_test():
    """Plant a race the detector must report, before trusting it with the tests:
    two threads write _Planted.field with no lock, the second after the first
    through a bare _thread lock, which orders them in fact but is no
    happens-before edge the detector knows.  Leaves no report and no shadow."""
    from . import detector
    from .instrument import instrument_class, uninstrument_class

    planted = _Planted()
    first_done = _thread.allocate_lock()
    first_done.acquire()

    def first():
        planted.field = 1
        first_done.release()

    def second():
        with first_done:
            planted.field = 2

    echo, detector.ECHO = detector.ECHO, False
    instrument_class(_Planted)
    try:
        threads = [threading.Thread(target=f, name=f"race-self-test-{f.__name__}") for f in (first, second)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        uninstrument_class(_Planted)
        detector.ECHO = echo
        found = [r for r in detector.take_reports() if "_Planted.field" in r]
        detector.reset()
    if not found:
        raise SelfTestFailed(
            "--race: the race detector's self-test failed: two threads wrote a field with no lock "
            "in common and no report came, so a clean run would prove nothing. The detector's "
            "hooks are not working on this Python "
            f"({sys.version.split()[0]}); run without --race, or report it."
        )


def instrument_labs():
    """Import the lab packages present and instrument their classes; again at
    each test, for submodules imported since (idempotent).  Returns the classes."""
    from . import detector
    from .instrument import instrument_module

    for pkg in LAB_PACKAGES:
        try:
            importlib.import_module(pkg)
        except ModuleNotFoundError as e:
            if e.name != pkg:
                raise  # the package is there but broken: say so
    channels = set()
    for pkg in LAB_PACKAGES:
        for name, module in list(sys.modules.items()):
            if (name == pkg or name.startswith(pkg + ".")) and module is not None:
                chan = getattr(module, "Chan", None)
                if isinstance(chan, type):
                    channels.add(chan)
    for chan in channels:
        detector.track_channel(chan)
    done = []
    for pkg in LAB_PACKAGES:
        for name, module in list(sys.modules.items()):
            if (name == pkg or name.startswith(pkg + ".")) and module is not None:
                done += instrument_module(module, exclude=channels)
    return done


class _RacePlugin:
    def pytest_unconfigure(self, config):
        from . import detector

        detector.uninstall()  # before --sim's uninstall: its hooks sit on the simulation's

    def pytest_report_header(self, config):
        return "race detector: on (lockset rule; fields of " + ", ".join(LAB_PACKAGES) + ")"

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_setup(self, item):
        from . import detector

        instrument_labs()
        detector.reset()

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_makereport(self, item, call):
        from . import detector

        outcome = yield
        rep = outcome.get_result()
        races = detector.take_reports()
        if not races:
            return
        text = f"race detector: {len(races)} data race(s) during {call.when}\n\n" + "\n\n".join(races)
        if rep.passed or rep.skipped:
            rep.outcome = "failed"
            rep.longrepr = text
        else:
            rep.sections.append((f"race detector ({call.when})", text))
