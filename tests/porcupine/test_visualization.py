"""The HTML page written by Visualize / VisualizePath."""
from __future__ import annotations

import io
import json
from html.parser import HTMLParser

from models import KvInput, KvModel, KvOutput
from porcupine import CheckOperationsVerbose, Illegal, Model, Ok, Operation, Visualize, VisualizePath
from porcupine.visualization import computeVisualizationData

VOID = {"meta", "br", "img", "input", "link", "hr", "area", "base", "col", "embed", "source", "track", "wbr"}


class _Structure(HTMLParser):
    """Checks that tags nest properly and collects script bodies and external references."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.stack = []
        self.errors = []
        self.tags = []
        self.scripts = []  # (attrs, text)
        self.external = []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        a = dict(attrs)
        for name in ("src", "href"):
            if name in a and a[name] not in ("#",):
                self.external.append((tag, name, a[name]))
        if tag == "link":
            self.external.append((tag, "link", a))
        if tag not in VOID:
            self.stack.append((tag, a))

    def handle_startendtag(self, tag, attrs):
        self.tags.append(tag)

    def handle_endtag(self, tag):
        if not self.stack or self.stack[-1][0] != tag:
            self.errors.append(f"</{tag}> closes {self.stack[-1][0] if self.stack else 'nothing'}")
            return
        self.stack.pop()

    def handle_data(self, data):
        if self.stack and self.stack[-1][0] == "script":
            self.scripts.append((self.stack[-1][1], data))


def _kv(cli, op, key, value, out, call, ret):
    return Operation(cli, KvInput(op, key, value), call, KvOutput(out), ret)


def _illegal_history():
    return [
        _kv(0, 1, "a", "1", "", 0, 10),
        _kv(1, 2, "a", "2", "", 5, 25),
        _kv(2, 0, "a", "", "12", 30, 40),
        _kv(0, 0, "a", "", "1", 45, 50),  # stale: the append finished before this read began
        _kv(1, 1, "b", "</script><!--", "", 0, 5),  # a value that must not break the page
        _kv(2, 0, "b", "", "</script><!--", 6, 9),
    ]


def _parse(page):
    p = _Structure()
    p.feed(page)
    p.close()
    return p


def test_visualize_illegal_history(tmp_path):
    ops = _illegal_history()
    res, info = CheckOperationsVerbose(KvModel, ops, 1.0)
    assert res == Illegal
    path = tmp_path / "history.html"
    VisualizePath(KvModel, info, str(path))
    page = path.read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>")
    p = _parse(page)
    assert p.errors == [] and p.stack == [], (p.errors, p.stack)
    for tag in ("html", "head", "style", "body", "script"):
        assert tag in p.tags
    assert p.external == []  # self-contained
    data_scripts = [text for attrs, text in p.scripts if attrs.get("id") == "history-data"]
    assert len(data_scripts) == 1
    data = json.loads(data_scripts[0])
    assert data == json.loads(json.dumps(computeVisualizationData(KvModel, info)))
    descriptions = [h["Description"] for part in data for h in part["History"]]
    for d in ("put('a', '1')", "append('a', '2')", "get('a') -> '12'", "get('a') -> '1'", "put('b', '</script><!--')"):
        assert d in descriptions
    for d in ("put('a', '1')", "append('a', '2')", "get('a') -> '12'"):
        assert d in page  # readable in the page source too
    # partition a: the longest linearization stops before the stale read; b is fine
    a, b = data
    assert len(a["PartialLinearizations"][0]) == 3 and [s["Index"] for s in a["PartialLinearizations"][0]] == [0, 1, 2]
    assert [s["StateDescription"] for s in a["PartialLinearizations"][0]] == ["1", "12", "12"]
    assert len(b["PartialLinearizations"]) == 1 and len(b["PartialLinearizations"][0]) == 2
    assert "no complete linearization found" in page and "jump to first error" in page


def test_visualization_data_shape():
    ops = _illegal_history()
    _, info = CheckOperationsVerbose(KvModel, ops, 0)
    data = computeVisualizationData(KvModel, info)
    a = data[0]
    assert a["History"][3] == {"ClientId": 0, "Start": 45, "End": 50, "Description": "get('a') -> '1'"}
    lengths = [len(p) for p in a["PartialLinearizations"]]
    assert lengths == sorted(lengths, reverse=True)
    # Largest points each linearized op at the longest partial linearization containing it
    for op_id, idx in a["Largest"].items():
        assert op_id in [s["Index"] for s in a["PartialLinearizations"][idx]]
        assert all(len(p) <= lengths[idx] for p in a["PartialLinearizations"] if op_id in [s["Index"] for s in p])
    assert a["InitialState"] == ""


def test_visualize_ok_history_and_binary_output():
    def step(state, input, output):
        return (output == state, state) if input is None else (True, input)

    model = Model(Init=lambda: 0, Step=step)
    ops = [Operation(0, 5, 0, None, 10), Operation(1, None, 5, 5, 15), Operation(1, None, 20, 5, 30)]
    res, info = CheckOperationsVerbose(model, ops, 0)
    assert res == Ok
    text = io.StringIO()
    Visualize(model, info, text)
    raw = io.BytesIO()
    Visualize(model, info, raw)
    assert raw.getvalue().decode("utf-8") == text.getvalue()
    p = _parse(text.getvalue())
    assert p.errors == [] and p.stack == []
    data = json.loads([t for a, t in p.scripts if a.get("id") == "history-data"][0])
    assert [h["Description"] for h in data[0]["History"]] == ["5 -> <nil>", "<nil> -> 5", "<nil> -> 5"]
    assert "longest linearization 3 of 3: linearizable" in text.getvalue()
