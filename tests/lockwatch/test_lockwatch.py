"""The lock watchdog on lock mistakes planted in a tiny lab-like service (scenario_code.py).

Each scenario runs in a subprocess from a copy under <tmp>/kvraft/, so that its
locks are lab locks, whatever state the student's Raft is in.  The detector is
given a made-up clock there: these tests assert what is said, never how fast.
"""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCENARIO = Path(__file__).with_name("scenario_code.py")


def run_scenario(tmp_path, name):
    lab = tmp_path / "kvraft"
    lab.mkdir()
    shutil.copy(SCENARIO, lab / "scenario.py")
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.run(
        [sys.executable, str(lab / "scenario.py"), name],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120,
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0 and out.rstrip().endswith("ended"), out
    return out


pytestmark = pytest.mark.realtime  # real threads and a subprocess, even under --sim


def test_call_cycle_is_a_deadlock_naming_each_holder(tmp_path):
    out = run_scenario(tmp_path, "call_cycle")
    report = out[out.index("lockwatch: deadlock"):]
    lines = report.splitlines()
    assert len(lines) == 7, report  # the title, a line per thread of the cycle, the advice
    assert "4 thread(s) have waited for each other" in lines[0], report
    for me, other in ((0, 1), (1, 0)):
        assert f"peer{me}-pinger holds Peer[{me}].mu (taken at scenario.py:" in report, report
        assert f"waits in Call to {other}.Ping (scenario.py:" in report, report
        assert f"for Peer[{me}].mu, held by peer{me}-pinger" in report, report
    assert "that handler (labrpc-handler-" in report, report
    # and the report broke the cycle: both callers ended ("ended" is printed after the joins)


def test_held_across_call_names_both_places(tmp_path):
    out = run_scenario(tmp_path, "call_cycle")
    assert "lockwatch: peer0-pinger holds Peer[0].mu (taken at scenario.py:" in out, out
    assert "across Call('Peer.Ping') at scenario.py:" in out, out


def test_reentrant_acquire_is_reported_at_once(tmp_path):
    out = run_scenario(tmp_path, "self_deadlock")
    assert "lockwatch: deadlock: thread peer0-ticker waits at scenario.py:" in out, out
    assert "for Peer[0].mu, which it holds itself (taken at scenario.py:" in out, out


def test_held_across_sleep_names_both_places(tmp_path):
    out = run_scenario(tmp_path, "held_across_sleep")
    assert "MainThread holds Peer[0].mu (taken at scenario.py:" in out, out
    assert "across time.sleep(0.001) at scenario.py:" in out, out


def test_held_across_thread_start_names_both_places(tmp_path):
    out = run_scenario(tmp_path, "held_across_start")
    assert "MainThread holds Peer[0].mu (taken at scenario.py:" in out, out
    assert "across Thread.start() at scenario.py:" in out, out
    assert "Go's `go` does not" in out, out


def test_applier_sending_under_its_lock_deadlocks_with_its_reader(tmp_path):
    out = run_scenario(tmp_path, "chan_cycle")
    assert "peer0-applier holds Peer[0].mu (taken at scenario.py:" in out, out
    assert "across a channel send (applyCh) at scenario.py:" in out, out
    report = out[out.index("lockwatch: deadlock"):]
    assert "service-reader waits at scenario.py:" in report and "held by peer0-applier" in report, report
    assert "waits in a channel send (scenario.py:" in report and "for its reader service-reader" in report, report


def test_locks_outside_the_lab_are_untouched():
    import threading

    from lockwatch import core

    assert not isinstance(threading.Lock(), core.LabLock)  # made here, in tests/


LAB_PEER = '''
import threading


class Peer:
    def __init__(self, me):
        self.mu = threading.Lock()
        self.me = me

    def lock_both(self, other, ready, go):
        with self.mu:
            ready.set()
            go.wait()
            with other.mu:
                pass
'''

LOCK_ORDER_TEST = '''
import threading

from shardctrler.lw_peer import Peer


def test_lock_order():
    p, q = Peer(0), Peer(1)
    ready, go = [threading.Event(), threading.Event()], threading.Event()
    threads = [threading.Thread(target=a.lock_both, args=(b, r, go), name=f"peer{a.me}-worker", daemon=True)
               for a, b, r in ((p, q, ready[0]), (q, p, ready[1]))]
    for t in threads:
        t.start()
    for r in ready:
        r.wait()
    go.set()
    for t in threads:
        t.join()
'''


def test_sim_deadlock_report_names_each_lock_holder(tmp_path):
    # Every thread blocked, no timeout pending: --sim's own deadlock report, which says
    # for each waiting thread which lab lock it waits for and who holds it since where.
    lab = tmp_path / "shardctrler"
    lab.mkdir()
    (lab / "__init__.py").write_text("")
    (lab / "lw_peer.py").write_text(LAB_PEER)
    (tmp_path / "test_lock_order.py").write_text(LOCK_ORDER_TEST)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(tmp_path), str(ROOT)]))
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-s", "-p", "no:cacheprovider", "-p", "tests.gotest",
         "-p", "sim.pytest_plugin", "-p", "lockwatch.pytest_plugin", "-c", os.devnull,
         "--rootdir", str(tmp_path), "--sim", "--sim-seed", "1", str(tmp_path)],
        cwd=tmp_path, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=120,
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1, out
    assert "sim: deadlock: every thread is blocked" in out, out
    for me, other in ((0, 1), (1, 0)):
        assert (f"Thread peer{me}-worker: holds Peer[{me}].mu (taken at lw_peer.py:11); waits for Peer[{other}].mu, "
                f"held by peer{other}-worker (taken at lw_peer.py:11)") in out, out
