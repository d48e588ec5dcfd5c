"""A wrong solution's history: a million operations, checked within the budget, drawn small.

A clerk that returns at once (the skeleton's) lets GenericTest's clients run millions of
operations in its 5 s window. The check must still answer within its timeout plus a little,
and the page must stay one that a browser opens.
"""
from __future__ import annotations

import random
import time

import pytest

from models import KvInput, KvModel, KvOutput
from porcupine import CheckOperationsVerbose, Illegal, Operation, Unknown, VisualizePath
from porcupine.visualization import MAX_OPS_PER_PARTITION

# These measure the checker's real CPU time: --sim runs them in real time.
pytestmark = pytest.mark.realtime

GET, PUT, APPEND = 0, 1, 2


def skeleton_history(nops, nclients=15, seed=1):
    """Random keys as in the linearizability tests; every Get sees "", nothing is stored."""
    rng = random.Random(seed)
    ops = []
    for i in range(nops):
        cli = rng.randrange(nclients)
        key = str(rng.randrange(nclients))
        r = rng.random()
        op = APPEND if r < 0.5 else PUT if r < 0.6 else GET
        value = "" if op == GET else f"x {cli} {i} y"
        ops.append(Operation(cli, KvInput(op, key, value), 2 * i, KvOutput(""), 2 * i + 1))
    return ops


def test_million_operation_wrong_history(tmp_path):
    ops = skeleton_history(1_000_000)
    start = time.monotonic()
    res, info = CheckOperationsVerbose(KvModel, ops, 1.0)
    elapsed = time.monotonic() - start
    assert res == Illegal
    assert elapsed < 2.0, f"the check took {elapsed:.2f} s with a 1 s timeout"

    page = tmp_path / "history.html"
    VisualizePath(KvModel, info, page)
    size = page.stat().st_size
    assert size < 10 * 1024 * 1024, f"the page has {size} bytes"
    text = page.read_text(encoding="utf-8")
    assert f"only the {MAX_OPS_PER_PARTITION} operations" in text
    assert "no complete linearization found" in text


def test_timeout_counts_building_the_entries():
    # a linearizable history too large to check in 0.2 s: Unknown, and soon after the timeout
    ops = [
        Operation(0, KvInput(APPEND, str(i % 7), "x"), 2 * i, KvOutput(""), 2 * i + 1) for i in range(300_000)
    ]
    start = time.monotonic()
    res, info = CheckOperationsVerbose(KvModel, ops, 0.2)
    elapsed = time.monotonic() - start
    assert res == Unknown
    assert elapsed < 1.0, f"the check took {elapsed:.2f} s with a 0.2 s timeout"
