"""pytest plugin: `--race` runs the lab tests under the lockset race detector.

With --race, before any test module is imported, the detector's lock and
hand-off hooks are installed, the classes of the lab packages (LAB_PACKAGES)
are instrumented and raft.Chan becomes a happens-before edge.  A test during
whose setup, body or teardown a race is found fails with the report(s); each
report is also printed to stderr the moment the race is seen.
"""

import importlib
import sys

import pytest

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

    detector.install()
    instrument_labs()
    config.pluginmanager.register(_RacePlugin(), "race-detector")


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
