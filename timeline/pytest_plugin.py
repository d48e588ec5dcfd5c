"""pytest plugin: a timeline page of every failed lab test.

    pytest --timeline fail     (the default) record each test, write the page of a failed one
    pytest --timeline always   write the page of every lab test, passed or failed
    pytest --timeline off      record nothing (the hooks return at once)

The page goes where the run's other output goes: mtests.py's folder (PYLABS_OUT),
as <Test>_<iteration>.timeline.html next to the run's <Test>_<iteration>.log, else
test-out/<Test>.timeline.html in the project (`make clean` removes both).  A test
that started no server (a framework test) gets no page.  The failure report names
the file, in a section of its own.
"""

import os
import re
import sys
from pathlib import Path

import pytest

from . import recorder, render


def pytest_addoption(parser):
    group = parser.getgroup("timeline", "timeline pages")
    group.addoption("--timeline", choices=("fail", "always", "off"), default="fail",
                    help="fail (default): write the timeline page of each failed lab test; always: of every "
                         "lab test; off: record nothing")
    group.addoption("--timeline-browser", action="store_true", default=False,
                    help="also run the tests marked browser, which open pages in headless Chromium "
                         "(make test-browser); without it they are deselected")


def pytest_configure(config):
    config.pluginmanager.register(TimelinePlugin(config), "timeline-pages")


def pytest_collection_modifyitems(config, items):
    """A clean machine has no browser: the browser tests run only when asked for."""
    if config.getoption("timeline_browser"):
        return
    browser = [item for item in items if item.get_closest_marker("browser") is not None]
    if browser:
        config.hook.pytest_deselected(items=browser)
        items[:] = [item for item in items if item.get_closest_marker("browser") is None]


def output_dir(config):
    out = os.environ.get("PYLABS_OUT")
    return Path(out) if out else Path(config.rootpath) / "test-out"


def page_name(test_name):
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", test_name).strip("_") or "test"
    iteration = os.environ.get("MTESTS_ITERATION")
    return f"{safe}_{iteration}.timeline.html" if iteration else f"{safe}.timeline.html"


class TimelinePlugin:
    def __init__(self, config):
        self.config = config
        self.mode = config.getoption("timeline")
        self.links = []  # porcupine pages written during the test

    def pytest_sessionstart(self, session):
        if self.mode != "off":
            self._watch_porcupine()

    def _watch_porcupine(self):
        """Link porcupine's history page from the timeline: wrap VisualizePath, which
        the kvraft and shardkv tests call by the module's attribute."""
        try:
            import porcupine
        except ImportError:
            return
        visualize = porcupine.VisualizePath
        if getattr(visualize, "_timeline", False):
            return
        links = self.links

        def VisualizePath(model, info, path, *args, **kwargs):
            links.append(str(path))
            return visualize(model, info, path, *args, **kwargs)

        VisualizePath._timeline = True
        porcupine.VisualizePath = VisualizePath

    def pytest_runtest_setup(self, item):
        self.links.clear()
        if self.mode != "off":
            recorder.begin()  # after --sim's begin_test: time 0 is the virtual clock's start

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_makereport(self, item, call):
        outcome = yield
        report = outcome.get_result()
        if call.when != "call" or not recorder.recording():
            return
        t_end = recorder.stop()
        if not (report.failed or self.mode == "always"):
            return
        snap = render.snapshot(t_end)
        if not render.has_servers(snap):
            return
        outdir = output_dir(self.config)
        path = outdir / page_name(item.name)
        meta = {"test": item.nodeid, "mode": self._mode_text(), "outcome": report.outcome,
                "links": [(f"porcupine's history page: {Path(p).name}", self._href(p, outdir)) for p in self.links]}
        try:
            outdir.mkdir(parents=True, exist_ok=True)
            size = render.write_page(path, snap, meta)
        except Exception as e:  # the test's own outcome matters more than its picture
            line = f"timeline: could not write {path}: {type(e).__name__}: {e}"
        else:
            line = f"timeline: wrote {path} ({size / 1e6:.1f} MB): open it in a browser"
        report.sections.append(("timeline", line))
        sys.stderr.write(line + "\n")

    def pytest_runtest_teardown(self, item):
        recorder.stop()

    def _mode_text(self):
        sim = self.config.pluginmanager.get_plugin("sim")
        if sim is None:
            return "real time"
        return f"--sim --sim-seed {sim.seed}"

    @staticmethod
    def _href(path, outdir):
        p = Path(path).resolve()
        try:
            return str(p.relative_to(outdir.resolve()))
        except ValueError:
            return p.as_uri()
