"""The lock watchdog on the three classic lock mistakes, planted in a copy of the
solution's Raft (plants.py): each fails the lab test with a few lines that name
the lock, its holder and both places, instead of hanging to the whole-test limit.

Solution-only (tools/skeleton.py leaves it out of the student export): the plants
edit passages of our raft/raft.py.  Time to failure is asserted in virtual
seconds (under --sim) only; in real time, that the test ended long before its
limit.  The real-time figures are in docs/lockwatch.md.
"""

import os
import re
import shlex
import subprocess
import sys

import pytest

from .plants import ROOT, copy_project, plant

RAFT = "tests/raft/test_raft.py::"
RUN_LIMIT = 300  # seconds: a run that hangs fails here rather than holding up the suite

pytestmark = [pytest.mark.realtime]


@pytest.fixture
def planted(tmp_path, request):
    copy = tmp_path / "project"
    copy_project(copy)
    lines = plant(copy, request.param)
    return copy, lines


def run(copy, *args):
    env = dict(os.environ)
    env.pop("VERBOSE", None)
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-s", *args],
        cwd=copy, env=env, capture_output=True, text=True, timeout=RUN_LIMIT,
    )
    return proc.returncode, proc.stdout + proc.stderr


def planted_at(lines):
    """A regex of `raft.py:N` for the planted passage's lines."""
    return r"raft\.py:(?:%s)" % "|".join(str(n) for n in lines)


@pytest.mark.parametrize("planted", ["vote_under_lock"], indirect=True)
def test_vote_sender_holding_its_lock_is_a_deadlock_in_real_time(planted):
    copy, lines = planted
    # Half the bar (docs/lockwatch.md has the whole one, and its times): whether a
    # cycle forms is up to the schedule in real time, but in seven-peer TestManyElections2A
    # it always has so far, 10 to 20 s into the test.
    rc, out = run(copy, RAFT + "TestManyElections2A")
    assert rc == 1, out
    assert "lockwatch: deadlock (" in out, out
    assert "within the whole-test limit" not in out, out  # found, not timed out
    assert len(out.splitlines()) <= 400, out
    # Each peer of the cycle: the lock it holds and where it took it, the Call it waits in,
    # and the holder of the lock its peer's handler waits for.
    assert re.search(r"raft(\d)-vote holds Raft\[\1\]\.mu \(taken at %s\) and waits in Call to \d\.RequestVote"
                     % planted_at(lines), out), out
    assert re.search(r"that handler \(labrpc-handler-\d+\) waits at raft\.py:\d+ for Raft\[(\d)\]\.mu, held by raft\1-vote", out), out
    # In real time, holding the lock across the Call is a warning at the end of the test.
    assert re.search(r"lockwatch: warning: raft\d-vote holds Raft\[\d\]\.mu \(taken at %s\) across "
                     r"Call\('Raft\.RequestVote'\) at raft\.py:\d+" % planted_at(lines), out), out


@pytest.mark.parametrize("planted", ["vote_under_lock"], indirect=True)
def test_vote_sender_deadlock_under_sim_in_virtual_seconds(planted):
    copy, lines = planted
    # --lockwatch-held warn: let the deadlock happen, rather than fail at the first held Call.
    rc, out = run(copy, "--sim", "--sim-seed", "1", "--lockwatch-held", "warn", RAFT + "TestManyElections2A")
    assert rc == 1, out
    m = re.search(r"lockwatch: deadlock \(([\d.]+) virtual s into the test\)", out)
    assert m, out
    assert float(m.group(1)) <= 60, out
    assert re.search(r"for Raft\[(\d)\]\.mu, held by raft\1-vote", out), out
    assert len(out.splitlines()) <= 100, out


@pytest.mark.parametrize("planted", ["vote_under_lock"], indirect=True)
def test_held_across_call_fails_under_sim_and_its_replay_line_pastes(planted):
    copy, lines = planted
    rc, out = run(copy, "--sim", RAFT + "TestInitialElection2A")
    assert rc == 1, out
    assert re.search(r"lockwatch: raft\d-vote holds Raft\[\d\]\.mu \(taken at %s\) across "
                     r"Call\('Raft\.RequestVote'\) at raft\.py:\d+" % planted_at(lines), out), out
    replay = re.search(r"(?m)^replay: (.*)$", out)
    assert replay, out
    # Pasted as printed, in a shell, in the project: the same failure.
    proc = subprocess.run(replay.group(1), shell=True, cwd=copy, capture_output=True, text=True, timeout=RUN_LIMIT)
    again = proc.stdout + proc.stderr
    assert proc.returncode == 1, again
    assert "lockwatch: raft" in again and "INTERNALERROR" not in again, again


@pytest.mark.parametrize("planted", ["reentrant_getstate"], indirect=True)
def test_reentrant_getstate_fails_at_once(planted):
    copy, lines = planted
    rc, out = run(copy, RAFT + "TestInitialElection2A")
    assert rc == 1, out
    assert "within the whole-test limit" not in out, out
    assert re.search(r"lockwatch: deadlock: thread raft(\d)-ticker waits at raft\.py:\d+ for Raft\[\1\]\.mu, "
                     r"which it holds itself \(taken at raft\.py:\d+\)", out), out


@pytest.mark.parametrize("planted", ["apply_under_lock"], indirect=True)
def test_applier_sending_under_its_lock_deadlocks_with_the_snapshotting_reader(planted):
    copy, lines = planted
    rc, out = run(copy, RAFT + "TestSnapshotBasic2D")
    assert rc == 1, out
    assert "lockwatch: deadlock (" in out and "within the whole-test limit" not in out, out
    assert re.search(r"config-applier-(\d) waits at raft\.py:\d+ for Raft\[\1\]\.mu, held by raft\1-applier", out), out
    assert re.search(r"raft(\d)-applier holds Raft\[\1\]\.mu \(taken at %s\) and waits in a channel send "
                     r"\(%s\) for its reader config-applier-\1" % (planted_at(lines), planted_at(lines)), out), out
    assert len(out.splitlines()) <= 100, out


@pytest.mark.parametrize("planted", ["apply_under_lock"], indirect=True)
@pytest.mark.parametrize("mode", [["--race"], ["--sim", "--sim-seed", "1"]], ids=["race", "sim"])
def test_applier_sending_under_its_lock_fails_under_race_and_sim(planted, mode):
    copy, lines = planted
    rc, out = run(copy, *mode, RAFT + "TestBasicAgree2B")
    assert rc == 1, out
    assert re.search(r"lockwatch: raft\d-applier holds Raft\[\d\]\.mu \(taken at %s\) across a channel send "
                     r"\(applyCh\) at %s" % (planted_at(lines), planted_at(lines)), out), out


@pytest.mark.parametrize("planted", ["start_under_lock"], indirect=True)
def test_thread_started_under_the_lock_is_a_warning_even_under_sim(planted):
    copy, lines = planted
    rc, out = run(copy, "--sim", "--sim-seed", "1", RAFT + "TestInitialElection2A")
    assert rc == 0, out  # a delay, not a hang: never a failure
    assert re.search(r"lockwatch: warning: raft\d-ticker holds Raft\[\d\]\.mu \(taken at raft\.py:\d+\) across "
                     r"Thread\.start\(\) at %s: Python's Thread\.start\(\) waits" % planted_at(lines), out), out


@pytest.mark.needs_lab
def test_the_solution_starts_no_thread_under_a_lab_lock():
    """What the plant above is caught at: none of it in our Raft (the student's may warn)."""
    rc, out = run(ROOT, "--sim", "--sim-seed", "1", RAFT + "TestInitialElection2A", RAFT + "TestFailAgree2B")
    assert rc == 0, out
    assert "lockwatch: warning" not in out, out
