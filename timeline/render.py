"""The timeline page of one test: the recorder's events -> one self-contained HTML file.

Everything the page shows is worked out here, black-box, from what the network and
the tester saw (never from a solution's fields):

- a server's role and term: candidate in term T from the first RequestVote it sends
  with Term T; leader in T from the first AppendEntries or InstallSnapshot it sends
  with T, or a GetState() the tester saw saying so; follower when it handles an RPC of
  a higher term, or GetState() says it is not the leader (after it led); down from
  labrpc's DeleteServer until AddServer.  A crashed instance's ends (registered
  before its crash) are left out.
- which servers a server can reach: labrpc's enabled ends, by their owner.
- the unreliable and long-reordering periods: labrpc's Reliable/LongReordering.

The page is bounded: at most MAX_BYTES, by dropping the RPC arrows (then the debug
lines) farthest from the failure point, and says what it dropped.  Its bytes depend
only on the events (no wall clock, sorted JSON), so under --sim a seed gives the
same page.
"""

import json
import re
from pathlib import Path

from . import recorder

MAX_BYTES = 5_000_000
LOG_BUDGET = 1_500_000  # at most this much of the page for debug lines
TESTER = "tester"
CLIENTS = "clients"
_TEMPLATE = Path(__file__).with_name("page.html")


def snapshot(t_end):
    """The recorder's state, copied (the rings may still move under late threads)."""
    return {
        "rpcs": [list(r) for r in list(recorder.rpcs)],
        "events": [list(e) for e in list(recorder.events)],
        "ends": {k: list(v) for k, v in list(recorder.ends.items())},
        "totals": recorder.totals(),
        "t_end": t_end,
    }


def has_servers(snap):
    return any(e[1] == "AddServer" for e in snap["events"])


def write_page(path, snap, meta, max_bytes=MAX_BYTES):
    """Write the page of snap to path; returns its size in bytes."""
    page = render(snap, meta, max_bytes)
    data = page.encode("utf-8")
    Path(path).write_bytes(data)
    return len(data)


def render(snap, meta, max_bytes=MAX_BYTES):
    data = build(snap, meta)
    template = _TEMPLATE.read_text(encoding="utf-8")
    room = max_bytes - len(template.encode("utf-8")) - 1000
    _fit(data, room)
    blob = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    blob = blob.replace("</", "<\\/")  # a debug line cannot end the script element
    title = _escape(f"timeline: {meta.get('test', '')}")
    return template.replace("__TITLE__", title).replace("__DATA__", blob)


def _escape(s):
    return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


# ---- lanes --------------------------------------------------------------------------


def _group(name):
    m = re.fullmatch(r"server-(\d+)-(\d+)", name)
    if m:
        return f"group {m.group(1)}"
    if re.fullmatch(r"ctrler\d+", name):
        return "shardctrler"
    return "servers"


def _label(name):
    if name.isdigit():
        return f"S{name}"
    m = re.fullmatch(r"server-(\d+)-(\d+)", name)
    if m:
        return f"G{m.group(1)} S{m.group(2)}"
    m = re.fullmatch(r"ctrler(\d+)", name)
    return f"ctrler {m.group(1)}" if m else name


def _natural(s):
    return [int(p) if p.isdigit() else p for p in re.split(r"(\d+)", s)]


def _lanes(snap):
    names = set()
    for e in snap["events"]:
        if e[1] in ("AddServer", "DeleteServer"):
            names.add(str(e[3]))
        elif e[2] is not None and e[1] != "log":
            names.add(e[2])
    for r in snap["rpcs"]:
        if r[2] is not None:  # None: an end connected to no server
            names.add(str(r[2]))
    order = {"shardctrler": 0, "servers": 1}
    servers = sorted(names, key=lambda n: (order.get(_group(n), 2), _natural(_group(n)), _natural(n)))
    lanes = [{"id": TESTER, "label": "tester", "group": ""}]
    lanes += [{"id": n, "label": _label(n), "group": _group(n)} for n in servers]
    lanes.append({"id": CLIENTS, "label": "clerks", "group": ""})
    return lanes


# ---- the page's data ----------------------------------------------------------------


def build(snap, meta):
    lanes = _lanes(snap)
    index = {l["id"]: i for i, l in enumerate(lanes)}
    servers = [l["id"] for l in lanes[1:-1]]
    t_end = snap["t_end"]
    ends = snap["ends"]
    events = sorted(snap["events"], key=lambda e: e[0])  # stable: equal times keep their order
    failure = next((e for e in events if e[1] == "failure"), None)
    rpcs = sorted(snap["rpcs"], key=lambda r: r[0])

    kinds = sorted({r[3] for r in rpcs})
    kind_index = {k: i for i, k in enumerate(kinds)}
    arrows = []
    for t, end, server, kind, term, t_del, t_rep in rpcs:
        if server is None:
            continue
        frm = (ends.get(end) or [None])[0] or CLIENTS
        arrows.append([t, index[frm], index[str(server)], kind_index[kind], term, t_del, t_rep])

    marks = []  # [t, lane, type, text]
    up = set()  # servers added and not deleted since: a harness deletes a server before its first start
    applied = {}  # lane -> [[t, index]]
    logs = []  # [t, lane, text]
    holds = []  # [t_taken, t_let_go, lane, text]: a lab lock held long (lockwatch)
    for e in events:
        t, what, where = e[0], e[1], e[2]
        if what == "state":
            marks.append([t, index[where], "state", f"GetState(): term {e[3]}, {'leader' if e[4] else 'not leader'}"])
        elif what == "start":
            cmd, i, ok = e[3], e[4], e[5]
            text = f"Start({cmd}) -> index {i}, {'is leader' if ok else 'not leader'}"
            marks.append([t, index[where], "start" if ok else "start-no", text])
        elif what == "applied":
            applied.setdefault(where, []).append([t, e[3], 1 if e[4] else 0])
        elif what == "AddServer":
            marks.append([t, index[str(e[3])], "restart", "(re)started: labrpc AddServer"])
            up.add(str(e[3]))
        elif what == "DeleteServer" and str(e[3]) in up:
            marks.append([t, index[str(e[3])], "crash", "crashed: labrpc DeleteServer"])
            up.discard(str(e[3]))
        elif what == "log":
            lane = where if where in index else None
            logs.append([t, index[lane] if lane else 0, f"{e[3]} {e[4]}"])
        elif what == "held":
            holds.append([e[3], e[4], index.get(where, 0), e[5]])

    return {
        "test": meta.get("test", ""),
        "mode": meta.get("mode", ""),
        "outcome": meta.get("outcome", ""),
        "links": meta.get("links", []),
        "t_end": t_end,
        "lanes": lanes,
        "bands": _roles(servers, events, rpcs, ends, index, t_end),
        "reach": _reach(servers, lanes, events, ends, index, t_end),
        "periods": _periods(events, t_end),
        "calls": _calls(events, t_end),
        "marks": marks,
        "applied": {str(index[k]): v for k, v in applied.items()},
        "logs": logs,
        "holds": holds,
        "kinds": kinds,
        "rpcs": arrows,
        "failure": [failure[0], failure[3]] if failure else None,
        "notes": _ring_notes(snap),
    }


def _roles(servers, events, rpcs, ends, index, t_end):
    """Per server lane: [[t0, t1, role, term]], black-box (see the module's comment)."""
    feed = []  # (t, seq, lane, what, term, extra)
    crashed_at = {}  # lane -> times of DeleteServer, to tell a crashed instance's ends
    for e in events:
        if e[1] == "AddServer":
            feed.append((e[0], len(feed), str(e[3]), "up", None, None))
        elif e[1] == "DeleteServer":
            feed.append((e[0], len(feed), str(e[3]), "down", None, None))
            crashed_at.setdefault(str(e[3]), []).append(e[0])
        elif e[1] == "state" and type(e[3]) is int:
            feed.append((e[0], len(feed), e[2], "leader" if e[4] else "notleader", e[3], None))
    for t, end, server, kind, term, t_del, _ in rpcs:
        if term is None or server is None:
            continue
        method = kind.rpartition(".")[2]
        owner = (ends.get(end) or [None])[0]
        if owner is not None:
            feed.append((t, len(feed), owner, "candidate" if method == "RequestVote" else "sends-leader", term, end))
        if t_del is not None:
            feed.append((t_del, len(feed), str(server), "heard", term, None))
    feed.sort()

    state = {s: ["down", None, 0] for s in servers}  # role, term, since
    bands = {s: [] for s in servers}

    def move(s, t, role, term):
        cur = state[s]
        if cur[0] == role and cur[1] == term:
            return
        if t > cur[2]:
            bands[s].append([cur[2], t, cur[0], cur[1]])
        state[s] = [role, term, t]

    for t, _, s, what, term, end in feed:
        if s not in state:
            continue
        role, cur_term, _ = state[s]
        if what == "up":
            move(s, t, "follower", cur_term)
        elif what == "down":
            move(s, t, "down", cur_term)
        elif role == "down":
            continue
        elif what in ("candidate", "sends-leader"):
            born = ends[end][2] or 0
            if any(born < c <= t for c in crashed_at.get(s, ())):
                continue  # sent by an instance that has crashed since
            if cur_term is None or term >= cur_term:
                new = "candidate" if what == "candidate" else "leader"
                if what == "candidate" or not (role == "leader" and term == cur_term):
                    move(s, t, new, term)
        elif what == "leader":
            if cur_term is None or term >= cur_term:
                move(s, t, "leader", term)
        elif what == "notleader":
            if cur_term is None or term > cur_term or role == "leader":
                move(s, t, "follower" if role != "candidate" or term != cur_term else role, term)
        elif what == "heard":
            if cur_term is None or term > cur_term:
                move(s, t, "follower", term)
    for s in servers:
        role, term, since = state[s]
        if t_end > since:
            bands[s].append([since, t_end, role, term])
    return {str(index[s]): b for s, b in bands.items()}


def _reach(servers, lanes, events, ends, index, t_end):
    """Per server lane: [[t0, t1, reachable lane indexes]] where it cannot reach every peer
    of its group (labrpc's enabled ends, by owner)."""
    group = {l["id"]: l["group"] for l in lanes}
    peers = {s: sorted((p for p in servers if p != s and group[p] == group[s]), key=_natural) for s in servers}
    enabled = {}  # owner -> {to: number of enabled ends}
    out = {s: [] for s in servers}
    cur = {s: None for s in servers}  # (since, reachable tuple) while not fully connected

    def update(s, t):
        counts = enabled.get(s, {})
        reach = tuple(index[p] for p in peers[s] if counts.get(p, 0) > 0)
        full = len(reach) == len(peers[s])
        if cur[s] is not None and (full or cur[s][1] != reach):
            if t > cur[s][0]:
                out[s].append([cur[s][0], t, list(cur[s][1])])
            cur[s] = None
        if not full and cur[s] is None:
            cur[s] = (t, reach)

    state = {}  # endname -> enabled
    for e in events:
        if e[1] != "Enable":
            continue
        name, on = e[3], e[4]
        owner, to = (ends.get(name) or [None, None])[:2]
        if owner not in out or to is None or state.get(name, False) == on:
            state[name] = on
            continue
        state[name] = on
        counts = enabled.setdefault(owner, {})
        counts[to] = counts.get(to, 0) + (1 if on else -1)
        update(owner, e[0])
    for s in servers:
        if cur[s] is not None and t_end > cur[s][0]:
            out[s].append([cur[s][0], t_end, list(cur[s][1])])
    return {str(index[s]): v for s, v in out.items() if v}


def _periods(events, t_end):
    """[[t0, t1, what]] for the unreliable and long-reordering stretches."""
    out, since = [], {}
    for e in events:
        if e[1] == "Reliable":
            key, on = "unreliable", not e[3]
        elif e[1] == "LongReordering":
            key, on = "long reordering", e[3]
        else:
            continue
        if on and key not in since:
            since[key] = e[0]
        elif not on and key in since:
            out.append([since.pop(key), e[0], key])
    for key, t in sorted(since.items()):
        out.append([t, t_end, key])
    return out


def _calls(events, t_end):
    """The tester's traced calls: [[t0, t1, depth, name, args, result]]."""
    calls = []
    for e in events:
        if e[1] == "call":
            t1 = e[6] if len(e) > 6 else t_end
            result = e[7] if len(e) > 7 else "(still running)"
            calls.append([e[0], t1, e[5], e[3], e[4], result])
    return calls


def _ring_notes(snap):
    notes = []
    calls, events = snap["totals"]
    if calls > len(snap["rpcs"]):
        notes.append(f"the recorder keeps the last {recorder.RPC_LIMIT} RPCs: the first "
                     f"{calls - len(snap['rpcs'])} of {calls} are not shown")
    if events > len(snap["events"]):
        notes.append(f"the recorder keeps the last {recorder.EVENT_LIMIT} events: the first "
                     f"{events - len(snap['events'])} of {events} are not shown")
    return notes


# What _fit drops, in this order, when the page would be too big: the kinds of item there
# are most of, and that say least alone.
_CUTTABLE = (
    ("rpcs", "RPC arrows"), ("marks", "Start and GetState marks"), ("holds", "long lock holds"), ("calls", "tester's calls"),
)


def _fit(data, room):
    """Drop the debug lines beyond LOG_BUDGET, then the RPC arrows, the marks, the long
    lock holds and the tester's calls, farthest from the failure point (or from the end)
    first, until the page's data fits in room bytes; say so in data['notes']."""
    center = data["failure"][0] if data["failure"] else data["t_end"]

    def size(x):
        return len(json.dumps(x, separators=(",", ":")))

    logs = data["logs"]
    if size(logs) > LOG_BUDGET:
        data["logs"] = _nearest(logs, center, LOG_BUDGET, size)
        data["notes"].append(_cut_note("debug lines", logs, data["logs"]))
    for key, what in _CUTTABLE:
        items = data[key]
        budget = room - size(dict(data, **{key: []})) - 200  # 200: room for this note
        if size(items) > budget:
            data[key] = _nearest(items, center, max(budget, 0), size)
            data["notes"].append(_cut_note(what, items, data[key]))


def _nearest(items, center, budget, size):
    """The items (sorted by time, [t, ...]) nearest center in time that fit in budget bytes."""
    if not items:
        return items
    per = size(items) / len(items)
    keep = int(budget / per * 0.98)
    ranked = sorted(range(len(items)), key=lambda i: (abs(items[i][0] - center), i))[:keep]
    return [items[i] for i in sorted(ranked)]


def _cut_note(what, before, after):
    if not after:
        return f"all {len(before)} {what} were cut to keep the page under {MAX_BYTES // 1_000_000} MB"
    return (f"{len(after)} of {len(before)} {what} kept, from {after[0][0] / 1e6:.3f} s to "
            f"{after[-1][0] / 1e6:.3f} s around the failure: the rest were cut to keep the page under "
            f"{MAX_BYTES // 1_000_000} MB")
