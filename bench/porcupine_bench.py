"""The linearizability checker: how long checks take, and how close to its budget a check returns.

The kvraft tests give the checker 1 s (linearizabilityCheckTimeout). A correct solution's
history has a few thousand operations; a wrong one's, whose clerk returns at once, a million,
which the checker cannot finish in 1 s: it must then answer at its deadline. The overshoot
is the time a check returns after its deadline (negative: before it); each figure is over
RUNS runs."""

import os
import random
import statistics
import time

from models import KvModel
from porcupine import CheckOperationsTimeout, CheckOperationsVerbose, VisualizePath
from tests.porcupine.histories import appends_history, random_kv_history, skeleton_history

BUDGET = 1.0  # seconds: the kvraft tests' linearizabilityCheckTimeout
MILLION = 1_000_000
RUNS = 3


def _timed(check, *args):
    """(seconds, what check returned)."""
    t0 = time.perf_counter()
    out = check(*args)
    return time.perf_counter() - t0, out


def _verdict(out):
    return out[0] if isinstance(out, tuple) else out


def small_histories():
    """The kvraft-sized checks: (description, seconds, verdict) each, the median of RUNS."""
    rows = []
    for what, seed, kw in (
        ("5000 operations, 15 clients mostly on their own key", 9, dict(nclients=15, shared=0.1, max_dur=200)),
        ("5000 operations, 5 clients on 5 random keys", 10, dict(nclients=5, shared=1.0, max_dur=300)),
    ):
        ops, _ = random_kv_history(random.Random(seed), nops=5000, **kw)
        runs = [_timed(CheckOperationsVerbose, KvModel, ops, BUDGET) for _ in range(RUNS)]
        rows.append((what, statistics.median(s for s, _ in runs), _verdict(runs[0][1])))
    return rows


def million(ops, verbose):
    """RUNS checks of ops with the budget: (seconds of each, their verdicts, info of the last)."""
    check = CheckOperationsVerbose if verbose else CheckOperationsTimeout
    seconds = []
    verdicts = set()
    out = None
    for _ in range(RUNS):
        out = None  # the last run's info is freed before the next run is timed
        s, out = _timed(check, KvModel, ops, BUDGET)
        seconds.append(s)
        verdicts.add(_verdict(out))
    return seconds, "/".join(sorted(verdicts)), out[1] if verbose else None


def _runs(seconds):
    return ", ".join(f"{s:.2f}" for s in seconds)


def run():
    for what, seconds, verdict in small_histories():
        print(f"porcupine: {what}: checked in {seconds * 1000:.0f} ms ({verdict}; budget {BUDGET:g} s)")

    wrong = skeleton_history(MILLION)
    seconds, verdict, info = million(wrong, True)
    print(f"porcupine: {MILLION:,} operations of a wrong solution (15 keys, every Get \"\"), "
          f"CheckOperationsVerbose with a {BUDGET:g} s budget: {verdict} in {statistics.median(seconds):.2f} s "
          f"(runs {_runs(seconds)} s)")
    t, _ = _timed(VisualizePath, KvModel, info, os.devnull)
    print(f"porcupine: the page of its last run ({sum(info.checked)} of {len(info.checked)} partitions checked "
          f"in time, the failing ones drawn, 2000 operations each): {t:.2f} s")
    del wrong, info

    for keys in (15, 1):
        correct = appends_history(MILLION, keys)
        for verbose in (True, False):
            seconds, verdict, _ = million(correct, verbose)
            over = [s - BUDGET for s in seconds]
            name = "CheckOperationsVerbose" if verbose else "CheckOperationsTimeout"
            print(f"porcupine: {MILLION:,} operations of a correct history ({keys} key{'s' if keys > 1 else ''}), "
                  f"{name} with a {BUDGET:g} s budget: {verdict} after {statistics.median(seconds):.2f} s, "
                  f"overshoot {max(over):+.2f} s at most (runs {_runs(seconds)} s)")
        del correct
