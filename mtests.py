#!/usr/bin/env python3
"""Run tests many times in parallel and summarise the results in a table.

    python3 mtests.py [--timeout 5m] [--workers 2] [-n 10] [-o mtests-out] [-v] [-a]
                      [--race] [--sim] [--sim-seed N] [--sim-preempt]
                      [--scheduler tcp://HOST:PORT [--shared-tree]]
                      [--pytest-args=ARGS] PATTERN...

Test functions are collected with ``pytest --collect-only`` (under ``tests/`` unless
``--path`` says otherwise) and selected the way ``go test -run`` selects them: a test is
chosen when one of the PATTERNs (regular expressions) matches somewhere in its function
name, so ``2A``, ``TestBackup2B`` and ``'Snapshot.*3B'`` all work.  A PATTERN that is a plain
word also selects the tests carrying the pytest marker of that name, so ``4A`` finds the shard
controller's TestBasic and TestMulti, whose Go names have no part suffix, and ``extra`` the
extra Raft tests (tests/raft/test_extra.py).  Every run is a separate
``python -m pytest -x -q -s NODEID`` process in its own process group; the queue holds
iteration 1 of every selected test, then iteration 2, and so on.  ``--scheduler`` sends the
runs to a Dask cluster instead (mtests_cluster.py; everything below holds there too).

A run that fails, or outlives ``--timeout``, counts as failed; its output is kept as
``DIR/<Test>_<iteration>.log`` (``-a`` keeps every run's output).  Shortly before a run
times out, pytest's faulthandler writes the stack of every thread into that log.  ``-v``
sets VERBOSE=1 in the runs' environment (Raft debug logging, see ``dslogs.py``); each run
also sees MTESTS_ITERATION=<iteration>.  ``--race`` runs every test under the race
detector (``pytest --race``, see ``race/``).

``--sim`` runs every test on simulated time (``pytest --sim``, the plugin in ``sim/``), each
run with a fresh seed drawn here (``--sim-seed S``, S from ``random.SystemRandom`` in
[0, 2**32)), so that mtests knows the seed of every run.  ``--sim-seed N`` gives every run
seed N instead: its Failed column then tells whether that seed always fails, i.e. whether
the run is deterministic.  ``--sim-preempt`` adds the plugin's randomised preemption.  Both
imply ``--sim``.  Under ``--sim`` each failed run is reported with its seed and a command
that replays it, ``.venv/bin/python -m pytest NODEID --sim --sim-seed S [--sim-preempt]`` (plus
``--race`` and the ``--pytest-args``, run from this directory), and a list of the failed
runs' seeds follows the table.  Other options of the plugin, such as
``--sim-check-determinism``, go through ``--pytest-args``.

Exit status: 0 when every run passed, 1 when a run failed, 2 on a usage or collection
error, 130 when interrupted (Ctrl-C prints the table of the runs finished so far).
Only the standard library is used (Dask's distributed too under --scheduler).
"""

from __future__ import annotations

import argparse
import math
import os
import random
import re
import shlex
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parent
# The interpreter of the runs, as a replay command names it: from the project folder the
# venv's python pastes as it is, where a bare python3 may lack pytest and msgpack.
PYTHON = (os.path.relpath(sys.executable, ROOT) if Path(sys.executable).is_relative_to(ROOT)
          else sys.executable)

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130

# Seconds between two progress lines when stdout is not a terminal.
PROGRESS_INTERVAL = 30.0

_DURATION_UNITS = {
    "ns": 1e-9,
    "us": 1e-6,
    "µs": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
}
_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")


def parse_duration(text: str) -> float:
    """Parse a Go-style duration ("90s", "2m", "1m30s", "1.5h", "0") into seconds.

    A bare number is taken as seconds.
    """
    s = text.strip()
    if re.fullmatch(r"\d+(?:\.\d*)?|\.\d+", s):
        return float(s)
    pos = 0
    total = 0.0
    while pos < len(s):
        m = _DURATION_PART.match(s, pos)
        if not m:
            raise ValueError(f"invalid duration {text!r} (examples: 90s, 2m, 1m30s)")
        total += float(m.group(1)) * _DURATION_UNITS[m.group(2)]
        pos = m.end()
    if not s:
        raise ValueError("empty duration")
    return total


def format_duration(seconds: float) -> str:
    """Render seconds as a short Go-like duration: 45.30s, 2m05.00s, 1h02m03.00s."""
    if seconds < 60:
        return f"{seconds:.2f}s"
    minutes, secs = divmod(seconds, 60)
    hours, minutes = divmod(int(minutes), 60)
    if hours:
        return f"{hours}h{minutes:02d}m{secs:05.2f}s"
    return f"{minutes}m{secs:05.2f}s"


# --------------------------------------------------------------------------- collection


@dataclass
class TestCase:
    nodeid: str
    name: str  # the function name, what PATTERNs are matched against
    label: str = ""  # what the table and log file names show

    def __post_init__(self) -> None:
        if not self.label:
            self.label = self.name


class CollectionError(Exception):
    pass


def function_name(nodeid: str) -> str:
    """The test function's name in a pytest node id ("a/b.py::Cls::TestX[1]" -> "TestX")."""
    last = nodeid.split("::")[-1]
    return last.split("[", 1)[0]


def collect(paths: list[str], pytest_args: list[str]) -> list[TestCase]:
    """Ask pytest for the node ids of every test under ``paths``, in collection order."""
    cmd = [sys.executable, "-m", "pytest", "--collect-only", "-q", *pytest_args, *paths]
    proc = subprocess.run(
        cmd,
        cwd=ROOT,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        errors="replace",
    )
    cases = []
    seen = set()
    other = []  # what pytest said besides the node ids, for error reports
    for line in proc.stdout.splitlines():
        line = line.rstrip()
        if (
            "::" not in line
            or line.startswith((" ", "ERROR", "FAILED"))
            or not line.split("::", 1)[0].endswith(".py")
        ):
            other.append(line)
            continue
        if line in seen:
            continue
        seen.add(line)
        cases.append(TestCase(nodeid=line, name=function_name(line)))
    if proc.returncode not in (0, 5) or not cases:
        # 5 is pytest's "no tests collected", reported by the caller as "no match".
        if not cases and proc.returncode != 5:
            raise CollectionError(
                f"test collection failed (exit status {proc.returncode}):\n"
                f"$ {shlex.join(cmd)}\n{proc.stdout}"
            )
        if proc.returncode not in (0, 5):
            print(
                f"warning: pytest reported collection errors (exit status "
                f"{proc.returncode}); continuing with the {len(cases)} tests it found:\n"
                + "\n".join(other),
                file=sys.stderr,
            )
    return cases


# A pattern that can also name a marker in a ``pytest -m`` expression.
_MARKER_WORD = re.compile(r"\w+")
_MARKER_EXPR_KEYWORDS = ("and", "or", "not")


def collect_marked(paths: list[str], pytest_args: list[str], patterns: list[str]) -> set[str]:
    """Node ids of the tests carrying a marker named by one of the plain-word patterns."""
    names = [p for p in patterns if _MARKER_WORD.fullmatch(p) and p not in _MARKER_EXPR_KEYWORDS]
    if not names:
        return set()
    return {c.nodeid for c in collect(paths, [*pytest_args, "-m", " or ".join(names)])}


def select(cases: list[TestCase], patterns: list[str], marked: set[str] = frozenset()) -> list[TestCase]:
    """Cases whose function name one of the regexes finds a match in, or whose node id is
    in ``marked`` (see collect_marked), in collection order.

    When two selected tests share a function name, both are labelled by node id instead.
    """
    regexes = [re.compile(p) for p in patterns]
    chosen = [c for c in cases if c.nodeid in marked or any(r.search(c.name) for r in regexes)]
    counts: dict[str, int] = {}
    for c in chosen:
        counts[c.name] = counts.get(c.name, 0) + 1
    for c in chosen:
        c.label = c.nodeid if counts[c.name] > 1 else c.name
    return chosen


def log_name(label: str, iteration: int) -> str:
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", label).strip("_") or "test"
    return f"{safe}_{iteration}.log"


# --------------------------------------------------------------------------- simulated time

SEED_LIMIT = 2**32  # fresh seeds are drawn from [0, SEED_LIMIT)
# Not the random module's shared generator: a test importing mtests, or a seeded
# random.seed() anywhere in this process, must not make the runs' seeds repeat.
_seed_source = random.SystemRandom()


@dataclass(frozen=True)
class Sim:
    """How the runs use the simulated-time plugin (mtests --sim, --sim-seed, --sim-preempt)."""

    seed: int | None = None  # every run's seed; None draws a fresh one per run
    preempt: bool = False

    def options(self) -> list[str]:
        """The plugin options of collection and of every run, all but the seed.

        Collection gets them too, like --race, so that a missing plugin stops mtests with
        one collection error instead of failing every run.  It gets no seed: each run's
        seed is chosen, and reported, here.
        """
        return ["--sim", *(["--sim-preempt"] if self.preempt else [])]

    def run_seed(self) -> int:
        return self.seed if self.seed is not None else _seed_source.randrange(SEED_LIMIT)

    def run_options(self, seed: int) -> list[str]:
        """The plugin options of one run, in the order the replay command shows them."""
        return ["--sim", "--sim-seed", str(seed), *(["--sim-preempt"] if self.preempt else [])]


def replay_command(nodeid: str, sim: Sim, seed: int, pytest_args: list[str],
                   verbose: int = 0) -> str:
    """A shell command that reruns one test with the plugin options and seed of a run.

    The run's other pytest arguments (--race, --pytest-args) are kept, after the plugin
    options, since what the test does under a seed may depend on them; ``-x -q -s`` and the
    faulthandler timeout are not, they change nothing the test does.
    """
    cmd = shlex.join([PYTHON, "-m", "pytest", nodeid, *sim.run_options(seed), *pytest_args])
    if verbose:
        cmd = f"VERBOSE={verbose} {cmd}"  # debug logging on, as it was in the run
    if Path.cwd() != ROOT:
        cmd = f"cd {shlex.quote(str(ROOT))} && {cmd}"  # node ids are relative to ROOT
    return cmd


# --------------------------------------------------------------------------- results


@dataclass
class TestStats:
    case: TestCase
    failed: int = 0
    durations: list[float] = field(default_factory=list)

    @property
    def total(self) -> int:
        return len(self.durations)

    def time_cell(self) -> str:
        if not self.durations:
            return "-"
        mean = statistics.fmean(self.durations)
        std = statistics.stdev(self.durations) if len(self.durations) > 1 else 0.0
        return f"{mean:.2f} ± {std:.2f}"


def render_table(stats: list[TestStats], color: bool = False) -> str:
    """Box-drawn table: Test | Failed | Total | Time (mean ± std in seconds)."""
    headers = ["Test", "Failed", "Total", "Time"]
    right = [False, True, True, True]
    rows = [[s.case.label, str(s.failed), str(s.total), s.time_cell()] for s in stats]
    widths = [max([len(h)] + [len(r[i]) for r in rows]) for i, h in enumerate(headers)]

    def cell(text: str, i: int) -> str:
        return text.rjust(widths[i]) if right[i] else text.ljust(widths[i])

    def rule(left: str, fill: str, mid: str, end: str) -> str:
        return left + mid.join(fill * (w + 2) for w in widths) + end

    lines = [rule("┏", "━", "┳", "┓")]
    lines.append("┃" + "┃".join(f" {cell(h, i)} " for i, h in enumerate(headers)) + "┃")
    lines.append(rule("┡", "━", "╇", "┩"))
    for s, row in zip(stats, rows):
        cells = [f" {cell(text, i)} " for i, text in enumerate(row)]
        if color:
            if s.failed:
                cells[0] = f"\x1b[1;31m{cells[0]}\x1b[0m"
                cells[1] = f"\x1b[1;31m{cells[1]}\x1b[0m"
            elif s.total:
                cells[1] = f"\x1b[32m{cells[1]}\x1b[0m"
        lines.append("│" + "│".join(cells) + "│")
    lines.append(rule("└", "─", "┴", "┘"))
    return "\n".join(lines)


def render_seeds(failures: list[RunResult], replay: Callable[[RunResult], str]) -> str:
    """The failed runs under --sim, one a line: Seed | Failed run | Replay command.

    A list under the table rather than a column in it: a test can fail with many seeds,
    and the FAIL lines that name them may have scrolled far away by the end.
    """
    headers = ["Seed", "Failed run", "Replay"]
    rows = [[str(r.seed), f"{r.case.label} iteration {r.iteration}", replay(r)] for r in failures]
    widths = [max([len(h)] + [len(row[i]) for row in rows]) for i, h in enumerate(headers)]
    return "\n".join(
        "  ".join(text.ljust(widths[i]) for i, text in enumerate(row)).rstrip()
        for row in [headers, *rows]
    )


# --------------------------------------------------------------------------- running


@dataclass
class RunResult:
    case: TestCase
    iteration: int
    returncode: int | None
    duration: float
    timed_out: bool = False
    interrupted: bool = False
    log: Path | None = None
    seed: int | None = None  # under --sim

    @property
    def passed(self) -> bool:
        return self.returncode == 0 and not self.timed_out


def _kill_group(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


class Runner:
    def __init__(
        self,
        cases: list[TestCase],
        iterations: int,
        workers: int,
        timeout: float,
        outdir: Path,
        archive: bool,
        verbose: int,
        pytest_args: list[str],
        sim: Sim | None = None,
    ) -> None:
        self.cases = cases
        self.iterations = iterations
        self.workers = max(1, workers)
        self.timeout = timeout
        self.outdir = outdir
        self.archive = archive
        self.verbose = verbose
        self.pytest_args = pytest_args
        self.sim = sim
        self.stats = {c.nodeid: TestStats(c) for c in cases}
        # Iteration-major order, so every test gets its first run early on.
        self.queue = [(c, i) for i in range(1, iterations + 1) for c in cases]
        self.total = len(self.queue)
        self.lock = threading.Lock()
        self.next_index = 0
        self.completed = 0
        self.failed_runs = 0
        self.failures: list[RunResult] = []  # for the seed list after the table
        self.running: dict[int, subprocess.Popen] = {}
        self.stopping = False
        self.killed: set[int] = set()  # pids stop() killed: their runs are not counted
        self.interrupted = False
        self.messages: list[str] = []  # failure notices the main thread prints
        self.wake = threading.Event()

    # Runs of a worker thread.
    def _take(self) -> tuple[TestCase, int] | None:
        with self.lock:
            if self.stopping or self.next_index >= len(self.queue):
                return None
            item = self.queue[self.next_index]
            self.next_index += 1
            return item

    def _command(self, case: TestCase, seed: int | None = None) -> list[str]:
        cmd = [sys.executable, "-m", "pytest", "-x", "-q", "-s"]
        if self.timeout > 0:
            # Dump every thread's stack into the log a little before the run is killed.
            margin = min(10.0, max(1.0, 0.1 * self.timeout))
            if self.timeout - margin > 0:
                cmd += ["-o", f"faulthandler_timeout={self.timeout - margin:g}"]
        cmd += self.pytest_args
        if self.sim:
            cmd += self.sim.run_options(seed)
        return cmd + [case.nodeid]

    def replay(self, r: RunResult) -> str:
        return replay_command(r.case.nodeid, self.sim, r.seed, self.pytest_args, self.verbose)

    def _env(self, iteration: int) -> dict[str, str]:
        env = {**os.environ, **self.run_variables(iteration)}
        env["PYLABS_OUT"] = str(self.outdir)  # files a failing test writes (history pages) go here too
        return env

    def run_variables(self, iteration: int) -> dict[str, str]:
        """What mtests sets in a run's environment (a run on a Dask worker gets them too)."""
        env = {"PYTHONUNBUFFERED": "1"}  # a killed run must not lose buffered output
        env["MTESTS_ITERATION"] = str(iteration)
        if self.verbose:
            env["VERBOSE"] = str(self.verbose)
        if self.sim:
            env["PYTHONHASHSEED"] = "0"  # what --sim would restart pytest with: save it the restart
        return env

    def _run_one(self, case: TestCase, iteration: int) -> RunResult | None:
        seed = self.sim.run_seed() if self.sim else None
        cmd = self._command(case, seed)
        fd, tmp = tempfile.mkstemp(prefix=".run-", suffix=".log", dir=self.outdir)
        with os.fdopen(fd, "wb") as out:
            with self.lock:
                if self.stopping:
                    os.unlink(tmp)
                    return None
                start = time.monotonic()
                proc = subprocess.Popen(
                    cmd,
                    cwd=ROOT,
                    env=self._env(iteration),
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,  # own session and process group
                )
                self.running[proc.pid] = proc
            timed_out = False
            try:
                proc.wait(timeout=self.timeout if self.timeout > 0 else None)
            except subprocess.TimeoutExpired:
                timed_out = True
                _kill_group(proc.pid)
                proc.wait()
            duration = time.monotonic() - start
            # Whatever the test left behind in its group goes too.
            _kill_group(proc.pid)
            with self.lock:
                del self.running[proc.pid]
                interrupted = proc.pid in self.killed and not timed_out
            if timed_out:
                trailer = f"killed after the {format_duration(self.timeout)} timeout"
            elif interrupted:
                trailer = "interrupted"
            else:
                trailer = f"exit status {proc.returncode}"
            out.write(
                f"\n--- mtests: {case.nodeid} iteration {iteration}: {trailer} "
                f"({duration:.2f}s)\n--- mtests: $ {shlex.join(cmd)}\n".encode()
            )
        result = RunResult(case, iteration, proc.returncode, duration, timed_out, interrupted,
                           seed=seed)
        if interrupted or (result.passed and not self.archive):
            os.unlink(tmp)
        else:
            result.log = self.outdir / log_name(case.label, iteration)
            os.replace(tmp, result.log)
        return result

    def _record(self, r: RunResult) -> None:
        with self.lock:
            if r.interrupted:
                return
            st = self.stats[r.case.nodeid]
            st.durations.append(r.duration)
            self.completed += 1
            if not r.passed:
                st.failed += 1
                self.failed_runs += 1
                why = (
                    f"timed out after {format_duration(self.timeout)}"
                    if r.timed_out
                    else f"exit status {r.returncode}"
                )
                seed = f", seed {r.seed}" if self.sim else ""
                message = (
                    f"FAIL {r.case.label} iteration {r.iteration} ({why}, "
                    f"{r.duration:.2f}s{seed}): {r.log}"
                )
                if self.sim:
                    # The plugin prints its own replay line into the log, but not when the
                    # run was killed at the timeout; this one is there for every failure.
                    message += f"\n  replay: {self.replay(r)}"
                self.messages.append(message)
                self.failures.append(r)
        self.wake.set()

    def _worker(self) -> None:
        try:
            while True:
                item = self._take()
                if item is None:
                    return
                result = self._run_one(*item)
                if result is None:
                    return
                self._record(result)
        except BaseException as e:  # a worker must never die silently
            with self.lock:
                self.messages.append(f"mtests: worker error: {e!r}")
                self.stopping = True
            self.wake.set()

    # Runs of the main thread.
    def in_flight(self) -> int:
        with self.lock:
            return len(self.running)

    def where(self) -> str:
        """Where the runs go, for the first line."""
        return f"{self.workers} worker{'s' * (self.workers != 1)}"

    def stop(self) -> None:
        """Stop handing out runs and kill the ones in flight (with their groups)."""
        with self.lock:
            self.stopping = True
            for pid in list(self.running):
                self.killed.add(pid)
                _kill_group(pid)

    def run(self, progress: "Progress") -> None:
        threads = [
            threading.Thread(target=self._worker, name=f"mtests-worker-{i}", daemon=True)
            for i in range(min(self.workers, max(1, self.total)))
        ]
        for t in threads:
            t.start()
        try:
            while any(t.is_alive() for t in threads):
                self.wake.wait(0.25)
                self.wake.clear()
                self._flush(progress)
        except KeyboardInterrupt:
            signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not lose the table
            self.interrupted = True
            self.stop()
            for t in threads:
                t.join()
        self._flush(progress)
        progress.finish()

    def _flush(self, progress: "Progress") -> None:
        with self.lock:
            messages, self.messages = self.messages, []
            snapshot = (self.completed, self.total, self.failed_runs)
        snapshot += (self.in_flight(),)
        for m in messages:
            progress.message(m)
        progress.update(*snapshot)


class Progress:
    """A status line redrawn in place on a terminal, or a line every so often otherwise."""

    def __init__(self, stream, tty: bool, interval: float = PROGRESS_INTERVAL) -> None:
        self.stream = stream
        self.tty = tty
        self.interval = interval
        self.start = time.monotonic()
        self.last_line = -math.inf
        self.last_state: tuple | None = None
        self.shown = False

    def _text(self, completed: int, total: int, failed: int, running: int) -> str:
        elapsed = time.monotonic() - self.start
        text = (
            f"[{completed}/{total}] failed: {failed}, running: {running}, "
            f"elapsed: {format_duration(elapsed)}"
        )
        if 0 < completed < total:
            eta = elapsed / completed * (total - completed)
            text += f", eta: {format_duration(eta)}"
        return text

    def message(self, text: str) -> None:
        if self.tty and self.shown:
            self.stream.write("\r\x1b[2K")
            self.shown = False
        self.stream.write(text + "\n")
        self.stream.flush()

    def update(self, completed: int, total: int, failed: int, running: int) -> None:
        text = self._text(completed, total, failed, running)
        if self.tty:
            width = _terminal_width(self.stream)
            self.stream.write("\r\x1b[2K" + text[: max(10, width - 1)])
            self.shown = True
            self.stream.flush()
            return
        now = time.monotonic()
        state = (completed, failed)
        if now - self.last_line >= self.interval and state != self.last_state:
            self.last_line = now
            self.last_state = state
            self.stream.write(text + "\n")
            self.stream.flush()

    def finish(self) -> None:
        if self.tty and self.shown:
            self.stream.write("\r\x1b[2K")
            self.stream.flush()
            self.shown = False


def _terminal_width(stream) -> int:
    try:
        columns = os.get_terminal_size(stream.fileno()).columns
    except (OSError, ValueError, AttributeError):
        columns = 0
    return columns if columns > 0 else 80


def _isatty(stream) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


# --------------------------------------------------------------------------- command line


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="mtests.py",
        description="Run the selected tests many times in parallel and print a "
        "Failed/Total/Time table.",
        epilog="Example: python3 mtests.py --timeout 2m --workers 4 -n 100 2A 2B. "
        "Values that start with '-' need '=': --pytest-args='-p no:randomly'.",
    )
    p.add_argument("patterns", nargs="+", metavar="PATTERN",
                   help="regular expression searched in test function names, like go test -run; "
                   "a plain word also selects the tests with that pytest marker "
                   "(several patterns: tests matching any of them)")
    p.add_argument("-n", "--iter", type=int, default=10, metavar="N",
                   help="runs of each test (default 10)")
    p.add_argument("-w", "--workers", type=int, metavar="N",
                   help="runs in parallel (default 2; with --scheduler, twice the cluster's threads)")
    p.add_argument("--scheduler", metavar="ADDRESS",
                   help="send every run to the Dask cluster of this scheduler (tcp://HOST:8786) "
                   "instead of local workers; needs the [cluster] extra (see mtests_cluster.py)")
    p.add_argument("--shared-tree", action="store_true",
                   help="with --scheduler: the workers see this project at this same path (shared "
                   "filesystem); without it the working tree is uploaded to them")
    p.add_argument("--timeout", default="5m", metavar="DURATION",
                   help="kill a run after this long, counting it as failed; Go syntax: 90s, "
                   "2m, 1m30s; 0 disables (default 5m)")
    p.add_argument("-o", "--output", default="mtests-out", metavar="DIR",
                   help="where to keep the output of failed runs (default mtests-out)")
    p.add_argument("-a", "--archive", action="store_true",
                   help="keep the output of every run, not only failed ones")
    p.add_argument("-v", "--verbose", action="count", default=0,
                   help="set VERBOSE=1 in the runs' environment (debug logging)")
    p.add_argument("-p", "--pytest-args", action="append", default=[], metavar="ARGS",
                   help="extra pytest arguments (shell-quoted string, repeatable), used for "
                   "collection and for every run")
    p.add_argument("--race", action="store_true",
                   help="run the tests under the race detector (pytest --race)")
    p.add_argument("--sim", action="store_true",
                   help="run the tests on simulated time (pytest --sim), each run with a fresh "
                   "random seed; a failed run is reported with its seed and a replay command")
    p.add_argument("--sim-seed", type=int, metavar="N",
                   help="like --sim, but every run uses seed N: a deterministic test then "
                   "fails in all its runs or in none")
    p.add_argument("--sim-preempt", action="store_true",
                   help="like --sim, with randomised preemption (pytest --sim-preempt)")
    p.add_argument("--path", action="append", default=[], metavar="PATH",
                   help="collect tests from PATH instead of tests/ (repeatable)")
    p.add_argument("-l", "--list", action="store_true",
                   help="print the selected tests and exit")
    return p


def runner_pytest_args(args: argparse.Namespace) -> list[str]:
    """The extra pytest arguments of every collection and run, besides the plugin options
    of simulated time (see sim_options)."""
    pytest_args = [a for s in args.pytest_args for a in shlex.split(s)]
    if args.race:
        pytest_args.append("--race")
    return pytest_args


def sim_options(args: argparse.Namespace) -> Sim | None:
    """What --sim, --sim-seed and --sim-preempt ask for; None without any of them."""
    if not (args.sim or args.sim_seed is not None or args.sim_preempt):
        return None
    return Sim(seed=args.sim_seed, preempt=args.sim_preempt)


# The plugin options that mtests.py sets itself under --sim: given through --pytest-args,
# the runs would use seeds that mtests cannot report (or a seed other than the one it shows).
_SIM_OPTIONS = ("--sim", "--sim-seed", "--sim-preempt")


def sim_options_in(pytest_args: list[str]) -> list[str]:
    return [a for a in pytest_args if a.split("=", 1)[0] in _SIM_OPTIONS]


# What the test runs import; without them every test module fails to import, and the
# collection errors would bury the cause.
REQUIRED_MODULES = ("pytest", "msgpack")


def missing_modules() -> list[str]:
    """The REQUIRED_MODULES this interpreter (the one the runs use) cannot import."""
    import importlib.util

    return [m for m in REQUIRED_MODULES if importlib.util.find_spec(m) is None]


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    out = sys.stdout
    try:
        timeout = parse_duration(args.timeout)
        for pat in args.patterns:
            re.compile(pat)
    except (ValueError, re.error) as e:
        print(f"mtests.py: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    if args.iter < 1 or (args.workers is not None and args.workers < 1):
        print("mtests.py: error: -n and --workers must be at least 1", file=sys.stderr)
        return EXIT_USAGE
    if args.shared_tree and not args.scheduler:
        print("mtests.py: error: --shared-tree goes with --scheduler", file=sys.stderr)
        return EXIT_USAGE
    missing = missing_modules()
    if missing:
        print(
            f"mtests.py: {sys.executable} has no {' or '.join(missing)}: run it with the project's venv "
            f"(make install, then .venv/bin/python mtests.py ..., or . .venv/bin/activate first)",
            file=sys.stderr,
        )
        return EXIT_USAGE
    pytest_args = runner_pytest_args(args)
    misplaced = sim_options_in(pytest_args)
    if misplaced:
        print(
            f"mtests.py: error: give {' '.join(misplaced)} to mtests.py itself (--sim, --sim-seed N, "
            f"--sim-preempt), not in --pytest-args: it must know each run's seed to report it",
            file=sys.stderr,
        )
        return EXIT_USAGE
    sim = sim_options(args)
    collect_args = pytest_args + (sim.options() if sim else [])
    paths = [str(Path(p).resolve()) for p in args.path] or ["tests"]

    try:
        cases = select(collect(paths, collect_args), args.patterns,
                       collect_marked(paths, collect_args, args.patterns))
    except CollectionError as e:
        print(f"mtests.py: {e}", file=sys.stderr)
        return EXIT_USAGE
    if not cases:
        print(f"mtests.py: no test matches {' '.join(args.patterns)}", file=sys.stderr)
        return EXIT_USAGE
    if args.list:
        for c in cases:
            print(c.label, file=out)
        return EXIT_OK

    outdir = Path(args.output).resolve()
    outdir.mkdir(parents=True, exist_ok=True)
    runner_args = (cases, args.iter, args.workers or 2, timeout, outdir, args.archive,
                   args.verbose, pytest_args, sim)
    if args.scheduler:
        import mtests_cluster  # needs the [cluster] extra: only imported when asked for

        try:
            runner = mtests_cluster.ClusterRunner.connect(args.scheduler, args.shared_tree,
                                                          args.workers, *runner_args)
        except mtests_cluster.ClusterError as e:
            print(f"mtests.py: {e}", file=sys.stderr)
            return EXIT_USAGE
    else:
        runner = Runner(*runner_args)
    tty = _isatty(out)
    mode = ""
    if sim:
        mode = (f", simulated time with seed {sim.seed} in every run" if sim.seed is not None
                else ", simulated time with a fresh seed per run")
        mode += " and preemption" if sim.preempt else ""
    print(
        f"Running {len(cases)} test{'s' * (len(cases) != 1)} x {args.iter} "
        f"= {runner.total} run{'s' * (runner.total != 1)}, "
        f"{runner.where()}, "
        f"timeout {format_duration(timeout) if timeout > 0 else 'none'}{mode}, output in {outdir}",
        file=out,
        flush=True,
    )
    # Also when started in the background by a shell, which leaves SIGINT ignored.
    previous_int = signal.signal(signal.SIGINT, signal.default_int_handler)
    previous_term = signal.getsignal(signal.SIGTERM)

    def on_term(signum, frame):  # treat `kill` like Ctrl-C: children die, table is printed
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    started = time.monotonic()
    try:
        runner.run(Progress(out, tty))
    finally:
        signal.signal(signal.SIGTERM, previous_term)
        signal.signal(signal.SIGINT, previous_int)
    wall = time.monotonic() - started

    if runner.interrupted:
        print(f"Interrupted: {runner.completed} of {runner.total} runs finished.", file=out)
    color = tty and not os.environ.get("NO_COLOR")
    print(render_table([runner.stats[c.nodeid] for c in cases], color=color), file=out)
    if sim and runner.failures:
        order = {c.nodeid: i for i, c in enumerate(cases)}
        failures = sorted(runner.failures, key=lambda r: (order[r.case.nodeid], r.iteration))
        print(render_seeds(failures, runner.replay), file=out)
    print(
        f"{runner.failed_runs} of {runner.completed} runs failed; "
        f"wall time {format_duration(wall)}",
        file=out,
        flush=True,
    )
    if runner.interrupted:
        return EXIT_INTERRUPTED
    if runner.failed_runs or runner.completed < runner.total:
        return EXIT_FAILED
    return EXIT_OK


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:  # during collection, before there is anything to show
        sys.exit(EXIT_INTERRUPTED)
