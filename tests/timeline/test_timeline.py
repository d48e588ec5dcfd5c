"""The timeline page: a planted election bug leaves a bounded, self-contained page
with a lane per server (the issue's bar), the same page for the same seed, and the
page's black-box inferences and bounds on events made up here."""

import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from timeline import recorder, render

ROOT = Path(__file__).resolve().parents[2]
TEST = "tests/raft/test_raft.py::TestInitialElection2A"


def page_data(html):
    m = re.search(r'<script id="data" type="application/json">(.*?)</script>', html, re.S)
    assert m, "the page has no data element"
    return json.loads(m.group(1))


def run_planted(outdir, *extra, verbose=False):
    """TestInitialElection2A under --sim with the election bug of plants.py; (status, output)."""
    env = dict(os.environ, PYLABS_OUT=str(outdir))
    env.pop("VERBOSE", None)
    if verbose:
        env["VERBOSE"] = "1"
    env.pop("MTESTS_ITERATION", None)
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-s", "-p", "tests.timeline.plants", "--sim", "--sim-seed", "1",
         *extra, TEST],
        cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True, timeout=300,
    )
    return proc.returncode, proc.stdout


@pytest.mark.needs_lab
@pytest.mark.realtime
def test_planted_election_bug_leaves_a_page_per_server(tmp_path):
    rc, out = run_planted(tmp_path / "a")
    assert rc == 1 and "expected one leader, got none" in out, out
    page = tmp_path / "a" / "TestInitialElection2A.timeline.html"
    assert f"timeline: wrote {page}" in out, out  # the failure names the file
    html = page.read_text()
    assert len(html.encode()) <= render.MAX_BYTES
    # self-contained: no script, style, image or frame fetched from anywhere
    assert not re.search(r"<(script|link|img|iframe)[^>]*\s(src|href)=", html), "the page loads something"
    assert "http://" not in html.replace('"http://www.w3.org/2000/svg"', ""), "the page names a URL"
    data = page_data(html)
    servers = [l["label"] for l in data["lanes"] if l["group"] == "servers"]
    assert servers == ["S0", "S1", "S2"], data["lanes"]
    assert "expected one leader, got none" in data["failure"][1]
    roles = {b[2] for bands in data["bands"].values() for b in bands}
    assert "candidate" in roles and "leader" not in roles, roles  # candidates, none of which won
    assert "--sim --sim-seed 1" in data["mode"]

    # The same seed, the same page, byte for byte.
    rc, out = run_planted(tmp_path / "b")
    assert rc == 1, out
    assert (tmp_path / "b" / page.name).read_bytes() == page.read_bytes()


@pytest.mark.needs_lab
@pytest.mark.realtime
def test_debug_lines_attach_to_their_servers_lane(tmp_path):
    rc, out = run_planted(tmp_path, verbose=True)
    assert rc == 1, out
    data = page_data((tmp_path / "TestInitialElection2A.timeline.html").read_text())
    lanes = {i: l["label"] for i, l in enumerate(data["lanes"])}
    seen = {lanes[lane] for _, lane, _ in data["logs"]}
    assert seen == {"S0", "S1", "S2"}, seen  # every server logs, and each line is on its lane
    printed = sorted(re.findall(r"^\d{6} (\w+) (S\d+) (.*)$", out, re.M))
    on_lanes = sorted((topic, lanes[lane], text) for _, lane, line in data["logs"] for topic, text in [line.split(" ", 1)])
    assert printed and on_lanes == printed


@pytest.mark.realtime
def test_a_kv_failure_links_porcupines_page(tmp_path):
    """A test that writes porcupine's page of a history and fails: its timeline links that page."""
    (tmp_path / "test_kv.py").write_text(textwrap.dedent("""
        import os
        import labrpc
        import porcupine
        from models.kv import KvInput, KvModel, KvOutput

        def test_kv():
            net = labrpc.MakeNetwork()
            net.AddServer(0, labrpc.MakeServer())
            get = porcupine.Operation(ClientId=0, Input=KvInput(Op=0, Key="k"), Call=0,
                                      Output=KvOutput(Value="never put"), Return=10)
            res, info = porcupine.CheckOperationsVerbose(KvModel, [get], 0)
            porcupine.VisualizePath(KvModel, info, os.path.join(os.environ["PYLABS_OUT"], "history.html"))
            net.Cleanup()
            assert res == porcupine.Illegal and False, "planted: not linearizable"
    """))
    env = dict(os.environ, PYLABS_OUT=str(tmp_path / "out"))
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT)] + [p for p in [env.get("PYTHONPATH")] if p])
    (tmp_path / "out").mkdir()
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "timeline.pytest_plugin",
         "-c", os.devnull, "--rootdir", str(tmp_path), str(tmp_path / "test_kv.py")],
        cwd=tmp_path, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True, timeout=120,
    )
    assert proc.returncode == 1 and "planted: not linearizable" in proc.stdout, proc.stdout
    html = (tmp_path / "out" / "test_kv.timeline.html").read_text()
    assert page_data(html)["links"] == [["porcupine's history page: history.html", "history.html"]]


# ---- the recorder and the page, on events made up here -------------------------------


@pytest.fixture
def rec():
    recorder.begin()
    try:
        yield recorder
    finally:
        recorder.stop()


class Args:
    def __init__(self, term):
        self.Term = term


def fake_run(rec, clock, fail=True):
    """Three servers: S0 campaigns in term 1 and leads, S1 is cut off, S2 crashes and restarts."""
    for s in range(3):
        names = [f"e{s}{j}" for j in range(3)]
        rec.owner(names, s)
        for j, name in enumerate(names):
            rec.connect(name, j)
            rec.net("Enable", name, True)
        rec.net("AddServer", s)
    clock(1.0)
    for j in (1, 2):
        r = rec.rpc_sent(f"e0{j}", j, "Raft.RequestVote", Args(1))
        rec.rpc_delivered(r)
        rec.rpc_replied(r)
    clock(1.1)
    rec.rpc_replied(rec.rpc_sent("e01", 1, "Raft.AppendEntries", Args(1)))  # never delivered: dropped
    rec.state(0, 1, True)
    clock(2.0)
    for j in range(3):
        rec.net("Enable", f"e1{j}", False)
    rec.net("DeleteServer", 2)
    clock(2.2)
    rec.net("AddServer", 2)
    clock(2.5)
    rec.rpc_sent("e20", 0, "Raft.RequestVote", Args(9))  # a crashed instance's end: not a candidate
    if fail:
        rec.failure("planted failure")


@pytest.fixture
def clock(monkeypatch):
    now = [0.0]
    monkeypatch.setattr(recorder, "now", lambda: int(now[0] * 1e6))

    def advance(t):
        now[0] = t

    return advance


def test_roles_reach_and_failure_are_inferred_from_events(rec, clock):
    fake_run(rec, clock)
    data = render.build(render.snapshot(3_000_000), {"test": "fake"})
    lanes = {l["label"]: str(i) for i, l in enumerate(data["lanes"])}
    roles = {name: [(b[2], b[3]) for b in data["bands"][i]] for name, i in lanes.items() if name.startswith("S")}
    assert roles["S0"] == [("follower", None), ("candidate", 1), ("leader", 1)], roles
    assert roles["S1"] == [("follower", None), ("follower", 1)], roles
    assert roles["S2"] == [("follower", None), ("follower", 1), ("down", 1), ("follower", 1)], roles
    assert data["reach"][lanes["S1"]] == [[2_000_000, 3_000_000, []]]  # cut off from both peers
    assert lanes["S0"] not in data["reach"]
    statuses = [(r[5] is not None, r[6] is not None) for r in data["rpcs"]]
    assert (False, True) in statuses and (True, True) in statuses
    assert data["failure"] == [2_500_000, "planted failure"]


def test_nothing_is_recorded_when_off(clock):
    recorder.begin()
    recorder.stop()
    recorder.net("AddServer", 0)
    assert recorder.rpc_sent("e", 0, "Raft.RequestVote", Args(1)) is None
    assert not recorder.events and not recorder.rpcs


def test_a_long_run_is_cut_around_the_failure_under_the_bound(rec, clock):
    fake_run(rec, clock, fail=False)
    for k in range(60_000):
        clock(3 + k / 1000)
        r = rec.rpc_sent("e01", 1, "Raft.AppendEntries", Args(1))
        rec.rpc_delivered(r)
        rec.rpc_replied(r)
    clock(40.0)
    rec.failure("late failure")
    bound = 1_000_000
    html = render.render(render.snapshot(63_000_000), {"test": "long"}, max_bytes=bound)
    assert len(html.encode()) <= bound
    data = page_data(html)
    assert any("RPC arrows kept" in n and "around the failure" in n for n in data["notes"]), data["notes"]
    times = [r[0] for r in data["rpcs"]]
    assert min(times) > 3_000_000 and max(times) < 63_000_000  # a window, not the start
    assert min(abs(t - 40_000_000) for t in times) < 1000  # that holds the failure point


def test_the_rings_are_bounded(rec, clock, monkeypatch):
    rpcs = type(recorder.rpcs)(maxlen=100)
    monkeypatch.setattr(recorder, "rpcs", rpcs)
    for _ in range(250):
        recorder.rpc_sent("e", 0, "KVServer.Get", object())
    assert len(rpcs) == 100
    snap = render.snapshot(1)
    assert render.build(snap, {})["notes"] == [
        f"the recorder keeps the last {recorder.RPC_LIMIT} RPCs: the first 150 of 250 are not shown"]


def test_a_page_of_only_getstate_marks_still_fits(rec, clock):
    """Marks alone over the bound: they are cut too, around the failure."""
    fake_run(rec, clock, fail=False)
    for k in range(20_000):
        clock(3 + k / 1000)
        rec.state(k % 3, 1, False)
    rec.failure("failure among the marks")
    bound = 500_000
    html = render.render(render.snapshot(30_000_000), {"test": "marks"}, max_bytes=bound)
    assert len(html.encode()) <= bound
    data = page_data(html)
    assert any("Start and GetState marks kept" in n for n in data["notes"]), data["notes"]
    assert data["rpcs"] == [] and data["failure"][1] == "failure among the marks"


def test_a_lab_lock_held_long_is_a_bar_on_its_servers_lane(rec, clock, monkeypatch):
    """lockwatch's hook: a lab lock of server 1 held 200 ms; one held 10 ms is not drawn."""
    import weakref

    from lockwatch import core
    from lockwatch.pytest_plugin import LockWatch

    class Raft:  # the lock's maker, as lockwatch finds it: its `me`, and the field the lock is in
        def __init__(self):
            self.me = 1

    raft = Raft()
    at = [0.0]
    monkeypatch.setattr(core, "time", type("Clock", (), {"monotonic": staticmethod(lambda: recorder._t0 + at[0])}))
    monkeypatch.setattr(core, "on_long_hold", LockWatch.long_hold)
    raft.mu = core.LabLock(__import__("threading").Lock(), weakref.ref(raft), "raft.py:1")
    fake_run(rec, clock, fail=False)
    for start, held in ((1.0, 0.2), (2.0, 0.01)):
        at[0] = start
        with raft.mu:
            at[0] = start + held
    rec.failure("planted failure")
    data = render.build(render.snapshot(3_000_000), {"test": "fake"})
    lanes = {l["label"]: i for i, l in enumerate(data["lanes"])}
    assert len(data["holds"]) == 1, data["holds"]
    a, b, lane, text = data["holds"][0]
    assert (a, b, lane) == (1_000_000, 1_200_000, lanes["S1"])
    assert text.startswith("Raft[1].mu held 200 ms by MainThread: taken at test_timeline.py:"), text
    assert ", let go at test_timeline.py:" in text, text
