"""pytest plugin: a line per test file instead of progress dots.

With -s the lab tests print their own lines ("Test (2A): ... / ... Passed --"), and
pytest's dot for each passed test lands at the start of the next title
(".Test (2A): election after network failure ..."); the framework tests, which print
nothing, give a bare line of dots.  At verbosity 0 or -1 (`-q`, as the make targets
run), a passed test prints nothing, a failed one a line naming it, and each file ends
with a line of its own:

    tests/raft/test_raft.py: 28 passed in 5m12s
"""

import pytest

# Real seconds: under --sim, time.monotonic is the virtual clock, which each test restarts.
from sim.realtime import monotonic


def pytest_configure(config):
    if config.getoption("verbose") <= 0:
        config.pluginmanager.register(_Progress(config), "progress")


def _elapsed(seconds):
    minutes, seconds = divmod(round(seconds), 60)
    return f"{minutes}m{seconds:02d}s" if minutes else f"{seconds}s"


class _Progress:
    def __init__(self, config):
        self.config = config
        self.file = None
        self.start = 0.0
        self.counts = {}

    def pytest_sessionstart(self, session):
        tr = self.config.pluginmanager.get_plugin("terminalreporter")
        if tr is not None and self.config.getoption("verbose") == 0:
            # At default verbosity pytest starts each file's line of dots with its path,
            # in front of the test's first title; our line per file names it instead.
            tr.write_fspath_result = lambda nodeid, res, **markup: None

    def _write(self, line):
        tr = self.config.pluginmanager.get_plugin("terminalreporter")
        if tr is not None:
            tr.ensure_newline()
            tr.write_line(line)

    @pytest.hookimpl(tryfirst=True)
    def pytest_report_teststatus(self, report, config):
        if report.when == "call" and report.passed:
            return "passed", "", "PASSED"
        if report.failed:
            return "failed" if report.when == "call" else "error", "", "FAILED"
        return None

    def pytest_runtest_logreport(self, report):
        if report.failed:
            what = "FAILED" if report.when == "call" else f"ERROR at {report.when} of"
            self._write(f"{what} {report.nodeid} ({_elapsed(report.duration)})")
        if report.when == "call" or (report.when == "setup" and not report.passed):
            outcome = "error" if report.when == "setup" and report.failed else report.outcome
            self.counts[outcome] = self.counts.get(outcome, 0) + 1
        elif report.when == "teardown" and report.failed:
            self.counts["error"] = self.counts.get("error", 0) + 1

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_protocol(self, item, nextitem):
        path = item.nodeid.split("::", 1)[0]
        if path != self.file:
            self.file, self.start, self.counts = path, monotonic(), {}
        yield
        if nextitem is None or nextitem.nodeid.split("::", 1)[0] != path:
            order = ("passed", "failed", "error", "skipped")
            summary = ", ".join(f"{self.counts[k]} {k}" for k in order if self.counts.get(k))
            self._write(f"{path}: {summary or 'nothing run'} in {_elapsed(monotonic() - self.start)}")
