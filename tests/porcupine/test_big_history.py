"""A wrong solution's history: a million operations, cut at the deadline with a verdict, drawn small.

A clerk that returns at once (the skeleton's) lets GenericTest's clients run millions of
operations in its 5 s window. The check must stop at its deadline with what it has found,
and the page must stay one that a browser opens. The deadline is a fake clock's here, which
passes as soon as the first partition has its verdict: the test does the same work on any
machine, however loaded. How long the real check takes, and how close to its budget it
returns, are `python -m bench porcupine`'s figures.
"""
from __future__ import annotations

from .histories import skeleton_history

from models import KvModel
from porcupine import CheckOperationsVerbose, Illegal, VisualizePath, checker
from porcupine.visualization import MAX_OPS_PER_PARTITION


class _Clock:
    """A fake clock: 0 until it expires, then a time past any deadline."""

    def __init__(self):
        self.expired = False

    def __call__(self):
        return 1e9 if self.expired else 0.0


def test_million_operation_wrong_history(tmp_path, monkeypatch):
    ops = skeleton_history(1_000_000)
    clock = _Clock()
    monkeypatch.setattr(checker, "_now", clock)
    search = checker.checkSingle

    def firstVerdictEndsTheBudget(*args):
        verdict = yield from search(*args)
        clock.expired = True
        return verdict

    monkeypatch.setattr(checker, "checkSingle", firstVerdictEndsTheBudget)
    res, info = CheckOperationsVerbose(KvModel, ops, 1.0)
    assert res == Illegal
    # the first of the 15 keys was checked and found wrong; the deadline stopped the others
    assert info.checked == [True] + [False] * 14
    assert len(info.history[0]) == 2 * len(KvModel.Partition(ops)[0])

    page = tmp_path / "history.html"
    VisualizePath(KvModel, info, page)
    size = page.stat().st_size
    assert size < 10 * 1024 * 1024, f"the page has {size} bytes"
    text = page.read_text(encoding="utf-8")
    assert f"only the {MAX_OPS_PER_PARTITION} operations" in text
    assert "no complete linearization found" in text
    assert "14 partitions were not checked before the time ran out" in text
