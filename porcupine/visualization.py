"""HTML visualization of a checked history. Python twin of porcupine/visualization.go.

The page is self-contained (inline CSS and JavaScript, no external resources). Per partition it
draws each client's operations as bars on a time line (times compressed to their order), the
longest linearization found as a path through linearization points, and, where that
linearization stops, the operations that could not come next (red). Hovering an operation shows
the states before and after it; clicking one shows the longest linearization that contains it.
"""
from __future__ import annotations

import html
import json
from typing import Any, Dict, List, Optional

from .checker import LinearizationInfo, _Deadline, _pieces, _TimedOut, callEntry, fillDefault
from .model import Model


# No Go twin: bounds that keep the page something a browser opens. A wrong solution's history
# can hold millions of operations (a clerk that returns at once); Go would draw them all.
MAX_OPS_PER_PARTITION = 2000  # operations drawn per partition: a window around the failure
MAX_OPS_PER_PAGE = 10000  # past this, only the partitions that are not linearizable are drawn
MAX_STATE_CHARS = 400  # a state description longer than this keeps its two ends


def computeVisualizationData(
    model: Model, info: LinearizationInfo, timeout: Optional[float] = None
) -> List[Dict[str, Any]]:
    """Per partition: History (by op id), PartialLinearizations (longest first), Largest.

    Besides Go's fields, each partition carries InitialState (DescribeState of Init()), which the
    page shows as the state before the first step, Partition (its index), Total and Longest
    (its size and its longest linearization's) and Note (what was left out). In a history of
    more than MAX_OPS_PER_PAGE operations with some partition not linearizable, only those
    partitions are drawn; a partition of more than
    MAX_OPS_PER_PARTITION operations is drawn as a window of that many around the point where
    its longest linearization stops. timeout (seconds, no Go twin; 0 or None: none): the
    partitions whose data is not complete by then are left out.
    """
    return _visualizationData(model, info, _pageDeadline(timeout))[0]


def _pageDeadline(timeout):
    # what the page builds is small and kept until it is written: nothing to free at the end
    return _Deadline(timeout, teardown=0.0)


def _visualizationData(model: Model, info: LinearizationInfo, deadline: _Deadline):
    """(data, late): computeVisualizationData's list, and the partitions the deadline left out."""
    model = fillDefault(model)
    checked = info.checked or [True] * len(info.history)
    partials = [sorted(p, key=len, reverse=True) for p in info.partialLinearizations]
    bad = [
        i
        for i, entries in enumerate(info.history)
        if checked[i] and len(entries) // 2 != (len(partials[i][0]) if partials[i] else 0)
    ]
    drawn = [i for i in range(len(info.history)) if checked[i]]
    if bad and sum(len(info.history[i]) // 2 for i in drawn) > MAX_OPS_PER_PAGE:
        drawn = bad
    data = []
    for k, i in enumerate(drawn):
        try:
            data.append(_partitionData(model, i, info.history[i], partials[i], deadline))
        except _TimedOut:
            return data, drawn[k:]
    return data, []


def _partitionData(model: Model, partition: int, entries, partials, deadline: _Deadline) -> Dict[str, Any]:
    n = len(entries) // 2
    callValue = [None] * n
    returnValue = [None] * n
    start = [0] * n
    end = [0] * n
    client = [0] * n
    byCall = []  # the ids in the order of their calls: the entries are in time order
    for _, piece in _pieces(entries, deadline):
        for elem in piece:
            k = elem.id
            if elem.kind == callEntry:
                callValue[k] = elem.value
                start[k] = elem.time
                client[k] = elem.clientId
                byCall.append(k)
            else:
                returnValue[k] = elem.value
                end[k] = elem.time
    shown, note = _window(byCall, partials, deadline)
    newId = {old: new for new, old in enumerate(shown)}
    history = []
    for _, piece in _pieces(shown, deadline):
        history += [
            {
                "ClientId": client[k],
                "Start": start[k],
                "End": end[k],
                "Description": model.DescribeOperation(callValue[k], returnValue[k]),
            }
            for k in piece
        ]
    largestIndex = {}
    largestSize = {}
    linearizations = []
    onPage = newId.keys()
    for partial in partials:
        deadline.check()
        if onPage.isdisjoint(partial):
            continue  # it names no operation on the page
        linearization = []
        state = model.Init()
        for _, piece in _pieces(partial, deadline):
            for histId in piece:
                ok, state = model.Step(state, callValue[histId], returnValue[histId])
                if not ok:
                    raise RuntimeError("valid partial linearization returned non-ok result from model step")
                j = newId.get(histId)
                if j is None:
                    continue  # stepped through for the states that follow, not drawn
                linearization.append({"Index": j, "StateDescription": _clip(model.DescribeState(state))})
                if largestSize.get(j, 0) < len(partial):
                    largestSize[j] = len(partial)
                    largestIndex[j] = len(linearizations)
        linearizations.append(linearization)
    return {
        "History": history,
        "PartialLinearizations": linearizations,
        "Largest": largestIndex,
        "InitialState": _clip(model.DescribeState(model.Init())),
        "Partition": partition,
        "Total": n,
        "Longest": len(partials[0]) if partials else 0,
        "Note": note,
    }


def _window(byCall, partials, deadline: _Deadline):
    """The operation ids to draw and a note on what was left out; byCall: the ids by call time."""
    n = len(byCall)
    if n <= MAX_OPS_PER_PARTITION:
        return list(range(n)), ""
    longest = set(partials[0]) if partials else set()
    # the first operation (by call) that the longest linearization could not take
    fail = 0
    for lo, piece in _pieces(byCall, deadline):
        pos = next((pos for pos, k in enumerate(piece, lo) if k not in longest), None)
        if pos is not None:
            fail = pos
            break
    lo = max(0, min(fail - MAX_OPS_PER_PARTITION // 2, n - MAX_OPS_PER_PARTITION))
    hi = lo + MAX_OPS_PER_PARTITION
    note = (
        f"only the {MAX_OPS_PER_PARTITION} operations with calls {lo + 1} to {hi} of {n} are drawn, "
        "around where the longest linearization stops; the states shown are those of the whole history"
    )
    return byCall[lo:hi], note


def _clip(text: str) -> str:
    if len(text) <= MAX_STATE_CHARS:
        return text
    keep = MAX_STATE_CHARS // 2
    return f"{text[:keep]}\u2026[{len(text) - 2 * keep} characters cut]\u2026{text[-keep:]}"


def _summary(data, info: LinearizationInfo, late) -> str:
    rows = []
    for p in data:
        i, n, best = p["Partition"], p["Total"], p["Longest"]
        verdict = "linearizable" if best == n else "no complete linearization found"
        cls = "" if best == n else ' class="bad"'
        note = f" ({html.escape(p['Note'])})" if p["Note"] else ""
        rows.append(
            f"<li{cls}>partition {i}: {n} operations, longest linearization "
            f"{best} of {n}: {html.escape(verdict)}{note}</li>"
        )
    drawn = {p["Partition"] for p in data} | set(late)
    checked = info.checked or [True] * len(info.history)
    skipped = sum(1 for i in range(len(info.history)) if checked[i] and i not in drawn)
    unchecked = checked.count(False)
    if skipped:
        rows.append(f"<li>{skipped} linearizable partitions are not drawn</li>")
    if late:
        rows.append(
            f'<li class="bad">{len(late)} partitions are not drawn: the time given to draw the page ran out</li>'
        )
    if unchecked:
        rows.append(f"<li>{unchecked} partitions were not checked before the time ran out</li>")
    return "\n".join(rows)


def Visualize(model: Model, info: LinearizationInfo, fileobj, timeout: Optional[float] = None) -> None:
    """Write the HTML page for info (from a Verbose check) to fileobj (text or binary).

    timeout (seconds, no Go twin; 0 or None: none): the page is written when it runs out, with
    the partitions drawn so far and the number left out.
    """
    data, late = _visualizationData(model, info, _pageDeadline(timeout))
    # "<" escaped so that no string in the data can end the script element
    payload = json.dumps(data, separators=(",", ":")).replace("<", "\\u003c")
    page = _PAGE.replace("@SUMMARY@", _summary(data, info, late)).replace("@DATA@", payload)
    try:
        fileobj.write(page)
    except TypeError:
        fileobj.write(page.encode("utf-8"))


def VisualizePath(model: Model, info: LinearizationInfo, path, timeout: Optional[float] = None) -> None:
    with open(path, "w", encoding="utf-8") as f:
        Visualize(model, info, f, timeout)


_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Linearizability check</title>
<style>
body { font: 13px/1.45 system-ui, sans-serif; margin: 1em 1.5em; color: #222; }
h1 { font-size: 18px; margin: 0 0 .4em; }
h2 { font-size: 14px; margin: 1.4em 0 .3em; }
.bad { color: #b00; }
.legend span { margin-right: 1.4em; white-space: nowrap; }
.sw { display: inline-block; width: 14px; height: 10px; vertical-align: middle; margin-right: 4px; border: 1px solid #777; }
.scroll { overflow-x: auto; border: 1px solid #ddd; background: #fcfcfc; }
svg text { font: 11px monospace; pointer-events: none; }
svg .lbl { fill: #555; }
rect.op { fill: #e3e8ef; stroke: #8a96a8; cursor: pointer; }
rect.op.lin { fill: #d4ead0; stroke: #6b9a63; }
rect.op.fail { fill: #f7d2d2; stroke: #c00; }
rect.op.sel { stroke-width: 2.5; stroke: #222; }
line.lp { stroke: #777; stroke-width: 2; }
line.lp.bad { stroke: #d00; stroke-width: 3; }
polyline.order { fill: none; stroke: #999; stroke-width: 1; stroke-dasharray: 3 3; }
#tip { position: fixed; display: none; z-index: 9; background: #fff; border: 1px solid #888;
  padding: 5px 8px; max-width: 46em; font: 12px/1.4 monospace; white-space: pre-wrap;
  box-shadow: 2px 2px 6px rgba(0, 0, 0, .25); }
</style>
</head>
<body>
<h1>Linearizability check</h1>
<p class="legend">
<span><i class="sw" style="background:#777"></i>Valid LP</span>
<span><i class="sw" style="background:#d00"></i>Invalid LP</span>
<span><i class="sw" style="background:#d4ead0"></i>in the shown linearization</span>
<span><i class="sw" style="background:#f7d2d2"></i>could not be linearized next</span>
<a href="#" id="jump">[ jump to first error ]</a>
</p>
<ul>
@SUMMARY@
</ul>
<p>The x axis is the order of calls and returns. Hover an operation for its states; click it
to show the longest linearization containing it.</p>
<div id="parts"></div>
<div id="tip"></div>
<script type="application/json" id="history-data">@DATA@</script>
<script>
(function () {
  "use strict";
  var data = JSON.parse(document.getElementById("history-data").textContent);
  var NS = "http://www.w3.org/2000/svg", ROW = 30, BAR = 20, LEFT = 84, TOP = 14;
  var tip = document.getElementById("tip"), views = [];

  function mk(tag, attrs, parent, text) {
    var e = document.createElementNS(NS, tag);
    for (var k in attrs) e.setAttribute(k, attrs[k]);
    if (text !== undefined) e.textContent = text;
    if (parent) parent.appendChild(e);
    return e;
  }

  function draw(p, pi) {
    var ops = p.History, n = ops.length, times = [], clients = [], row = {}, rank = new Map();
    ops.forEach(function (o) { times.push(o.Start, o.End); if (!(o.ClientId in row)) { row[o.ClientId] = 0; clients.push(o.ClientId); } });
    times.sort(function (a, b) { return a - b; });
    times = times.filter(function (t, i) { return i === 0 || t !== times[i - 1]; });
    times.forEach(function (t, i) { rank.set(t, i); });
    clients.sort(function (a, b) { return a - b; }).forEach(function (c, i) { row[c] = i; });
    var unit = Math.max(3, Math.min(18, 40000 / Math.max(1, times.length)));
    var best = p.Longest, total = p.Total;
    var sec = document.createElement("section"), h = document.createElement("h2");
    sec.id = "partition-" + p.Partition;
    h.textContent = "Partition " + p.Partition + ": " + total + " operations, " + clients.length + " clients, " +
      (best === total ? "linearizable" : "longest linearization " + best + " of " + total + ": no complete linearization found") +
      (p.Note ? " (" + p.Note + ")" : "");
    if (best !== total) h.className = "bad";
    var box = document.createElement("div");
    box.className = "scroll";
    var W = LEFT + (times.length + 1) * unit + 10, H = TOP + clients.length * ROW + 8;
    var svg = mk("svg", { width: W, height: H, viewBox: "0 0 " + W + " " + H });
    clients.forEach(function (c) { mk("text", { x: 6, y: TOP + row[c] * ROW + BAR / 2 + 4, "class": "lbl" }, svg, "client " + c); });
    var v = { p: p, pi: pi, ok: best === total, sec: sec, rects: [], x0: [], x1: [], y: [], pos: {}, fail: {}, lin: [] };
    ops.forEach(function (o, id) {
      var x0 = LEFT + rank.get(o.Start) * unit, x1 = LEFT + rank.get(o.End) * unit + unit * 0.8, y = TOP + row[o.ClientId] * ROW;
      var r = mk("rect", { x: x0, y: y, width: Math.max(2, x1 - x0), height: BAR, rx: 3, "class": "op" }, svg);
      var chars = Math.floor((x1 - x0 - 6) / 6.6);
      if (chars >= 3) mk("text", { x: x0 + 3, y: y + BAR / 2 + 4 }, svg, o.Description.length > chars ? o.Description.slice(0, chars - 1) + "\\u2026" : o.Description);
      r.addEventListener("mousemove", function (ev) { showTip(v, id, ev); });
      r.addEventListener("mouseleave", function () { tip.style.display = "none"; });
      r.addEventListener("click", function () { select(v, id in p.Largest ? p.Largest[id] : -1, id); });
      v.rects.push(r); v.x0.push(x0); v.x1.push(x1); v.y.push(y);
    });
    v.layer = mk("g", {}, svg);
    box.appendChild(svg); sec.appendChild(h); sec.appendChild(box);
    document.getElementById("parts").appendChild(sec);
    return v;
  }

  // Show partial linearization li of partition view v: linearization points joined in order,
  // then the operations that could have come next, all of which fail, in red.
  function select(v, li, selected) {
    var p = v.p, ops = p.History, lin = li >= 0 ? p.PartialLinearizations[li] : [];
    while (v.layer.firstChild) v.layer.removeChild(v.layer.firstChild);
    v.rects.forEach(function (r, id) { r.setAttribute("class", "op" + (id === selected ? " sel" : "")); });
    v.lin = lin; v.pos = {}; v.fail = {};
    var prev = -Infinity, pts = [];
    lin.forEach(function (s, j) {
      var id = s.Index, x = Math.min(Math.max(prev + 3, v.x0[id] + 2), v.x1[id] - 2);
      v.pos[id] = j; prev = x;
      v.rects[id].classList.add("lin");
      mk("line", { x1: x, x2: x, y1: v.y[id] - 3, y2: v.y[id] + BAR + 3, "class": "lp" }, v.layer);
      pts.push(x + "," + (v.y[id] + BAR / 2));
    });
    if (pts.length > 1) mk("polyline", { points: pts.join(" "), "class": "order" }, v.layer);
    if (lin.length < ops.length) {
      var minEnd = Infinity;
      ops.forEach(function (o, id) { if (!(id in v.pos) && o.End < minEnd) minEnd = o.End; });
      ops.forEach(function (o, id) {
        if (id in v.pos || o.Start > minEnd) return;
        v.fail[id] = true;
        v.rects[id].classList.add("fail");
        var x = Math.min(Math.max(prev + 3, v.x0[id] + 2), v.x1[id] - 2);
        mk("line", { x1: x, x2: x, y1: v.y[id] - 3, y2: v.y[id] + BAR + 3, "class": "lp bad" }, v.layer);
      });
    }
  }

  function showTip(v, id, ev) {
    var p = v.p, o = p.History[id], lin = v.lin, t = o.Description + "\\nclient " + o.ClientId +
      ", call " + o.Start + ", return " + o.End + "\\n";
    if (id in v.pos) {
      var j = v.pos[id];
      t += "step " + (j + 1) + " of " + lin.length + " in this linearization\\nstate before: " +
        (j ? lin[j - 1].StateDescription : p.InitialState) + "\\nstate after:  " + lin[j].StateDescription;
    } else if (v.fail[id]) {
      t += "could not be linearized next; state after step " + lin.length + ": " +
        (lin.length ? lin[lin.length - 1].StateDescription : p.InitialState);
    } else {
      t += "not in the shown linearization (click to show the longest one containing it)";
    }
    tip.textContent = t;
    tip.style.display = "block";
    tip.style.left = Math.min(ev.clientX + 14, window.innerWidth - tip.offsetWidth - 8) + "px";
    tip.style.top = (ev.clientY + 14) + "px";
  }

  data.forEach(function (p, pi) { var v = draw(p, pi); views.push(v); select(v, p.PartialLinearizations.length ? 0 : -1, -1); });
  document.getElementById("jump").addEventListener("click", function (ev) {
    ev.preventDefault();
    for (var i = 0; i < views.length; i++) {
      if (!views[i].ok) { select(views[i], views[i].p.PartialLinearizations.length ? 0 : -1, -1); views[i].sec.scrollIntoView(); return; }
    }
    alert("Every partition is linearizable.");
  });
})();
</script>
</body>
</html>
"""
