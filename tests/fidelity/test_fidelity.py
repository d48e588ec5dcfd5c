"""The suite judges a wrong solution as Go's would: planted bugs fail, fast.

Each test runs a real lab test in a pytest subprocess with a bug planted into
the solution (tests/fidelity/plants.py) and checks that it fails, and fails at
once (before the test's own checks could fail it) or at the whole-test limit,
with the thread, stack or message a student needs.  The tests at the end run
small test files of their own against tests/gotest.py.  None of them times the
subprocess: what the output says shows where the failure came from, and a
subprocess that hangs fails at its own limit (timeout=).
"""

import os
import re
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest

from .plants import PLANT_VAR

# These run real pytest processes, on the real clock: --sim runs them in real time.
pytestmark = pytest.mark.realtime

ROOT = Path(__file__).resolve().parents[2]


def run_pytest(args, plant=None, cwd=ROOT, timeout=120):
    """Run pytest in a subprocess; return (exit status, output)."""
    env = dict(os.environ)
    env.pop("VERBOSE", None)
    if plant is not None:
        env[PLANT_VAR] = plant
        args = ["-p", "tests.fidelity.plants"] + list(args)
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"] + list(args),
        cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True, timeout=timeout,
    )
    return proc.returncode, proc.stdout


RAFT = "tests/raft/test_raft.py::"


# ---- 1. an exception in any thread fails the test ----


@pytest.mark.needs_lab
def test_raising_requestvote_handler_fails_the_test():
    rc, out = run_pytest([RAFT + "TestInitialElection2A"], plant="raising_requestvote")
    assert rc == 1, out
    assert "1 failed" in out, out
    assert re.search(r"Exception in thread labrpc-handler-\d+", out), out
    assert "IndexError: planted: list index out of range" in out, out
    assert "(raised by the RPC handler Raft.RequestVote, run by labrpc)" in out, out
    assert "in planted" in out  # the traceback goes down to the raising line
    # The crash ended the test at once: its failure is the crash (the report opens with it),
    # not what the test would have found seconds later without votes: no leader.
    assert re.search(r"_ TestInitialElection2A _+\nException in thread labrpc-handler-\d+", out), out
    assert "expected one leader" not in out, out


@pytest.mark.needs_lab
def test_raising_appendentries_handler_fails_the_test():
    rc, out = run_pytest([RAFT + "TestBasicAgree2B"], plant="raising_appendentries")
    assert rc == 1, out
    assert "Raft.AppendEntries" in out and "IndexError: planted" in out, out


@pytest.mark.needs_lab
def test_raising_ticker_fails_the_test_and_leaves_no_thread():
    rc, out = run_pytest([RAFT + "TestBasicAgree2B"], plant="raising_ticker")
    assert rc == 1, out
    assert "Exception in thread raft1-ticker" in out, out
    assert "ZeroDivisionError: planted: division by zero in the ticker" in out, out
    # The interruption waited for make_config to finish, so cleanup stopped every peer.
    assert "still running 5 s after cleanup" not in out, out


def test_selection_that_matches_nothing_is_named():
    rc, out = run_pytest(["tests/raft", "-k", "2Z"])
    assert rc == 5, out  # pytest's "no tests collected"
    assert "no test matches -k '2Z'" in out, out
    rc, out = run_pytest(["tests/raft", "-k", "2A", "-m", "3B"])
    assert rc == 5 and "no test matches -k '2A' and -m '3B'" in out, out
    rc, out = run_pytest([RAFT + "TestInitialElection2A", "--collect-only"])
    assert rc == 0 and "no test matches" not in out, out


@pytest.mark.needs_lab
def test_thread_that_ignores_kill_is_named_after_passed():
    rc, out = run_pytest([RAFT + "TestBasicAgree2B"], plant="forgetful_thread")
    assert rc == 1, out
    # The test's checks passed; the leak is reported as a failure of its own, saying what to look for.
    assert "... Passed --" in out, out
    assert re.search(r"3 thread\(s\) still running 5 s after cleanup killed every server: raft\d-forgetful", out), out
    assert "a thread that does not check killed()" in out, out


@pytest.mark.needs_lab
def test_leftover_threads_are_named_when_the_test_fails_otherwise():
    rc, out = run_pytest([RAFT + "TestBasicAgree2B"], plant="raising_appendentries,forgetful_thread")
    assert rc == 1, out
    assert "IndexError: planted" in out, out
    # Under the failure's own message (a note), not only in the captured output.
    assert re.search(r"(?m)^E?\s*also: 3 thread\(s\) still running 5 s after cleanup.*raft\d-forgetful", out), out


# ---- 2. a hang fails instead of hanging forever ----


@pytest.mark.needs_lab
def test_deadlocked_applier_fails_at_the_whole_test_limit_with_every_stack():
    # The applier sends on applyCh holding mu; the tester's applier calls Snapshot.
    # --no-lockwatch: the lock watchdog would call it a deadlock first (tests/lockwatch).
    rc, out = run_pytest(["--no-lockwatch", "--test-timeout", "5", RAFT + "TestSnapshotBasic2D"], plant="applier_holds_mu")
    assert rc == 1, out
    assert "1 failed" in out, out
    assert "TestSnapshotBasic2D did not end within the whole-test limit of 5 s" in out, out
    assert re.search(r"To see it in seconds, run it on simulated time: \S+ -m pytest \S+TestSnapshotBasic2D --sim\n", out), out
    assert "Thread MainThread (main):" in out, out
    assert re.search(r"(Thread raft\d-applier|\d+ threads like this: raft\*-applier):", out), out
    assert re.search(r"(Thread config-applier-\d|\d+ threads like this: config-applier-\*):(\n .*)*\n    with self\.mu:", out), out
    # failed at the limit, its cleanup ended within the grace: the run was not aborted
    assert "still running" not in out and "aborting the test run" not in out, out


@pytest.mark.needs_lab
def test_stuck_teardown_aborts_the_run_with_every_stack():
    rc, out = run_pytest(["--test-timeout", "2", RAFT + "TestInitialElection2A"], plant="kill_hangs")
    assert rc == 1, out
    assert "reached the whole-test limit of 2 s" in out, out
    assert "TestInitialElection2A is still running 5 s after it failed at the whole-test limit of 2 s" in out, out
    assert re.search(r"in cleanup\n.*\n.*in planted", out), out
    assert "aborting the test run (exit status 1)" in out, out


# ---- 3. a reused reply shows stale fields, as with gob ----


@pytest.mark.needs_lab
def test_raft_reusing_its_replies_fails():
    # A rejection's Success=False is the zero value, not sent: the leader reads a
    # stale True, does not back up, and commits what followers do not hold.
    rc, out = run_pytest([RAFT + "TestBackup2B"], plant="raft_reuses_reply")
    assert rc == 1, out
    assert "failed to reach agreement" in out or "apply error" in out, out
    assert "labgob warning: Decoding into a non-default variable/field" in out, out


# ---- tests/gotest.py on small test files ----


def run_files(tmp_path, files, *args):
    """Run pytest with tests/gotest.py on the given test files, in tmp_path."""
    for name, text in files.items():
        (tmp_path / name).write_text(textwrap.dedent(text))
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT)] + [p for p in [env.get("PYTHONPATH")] if p])
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "tests.gotest",
         "-p", "no:threadexception", "-c", os.devnull, "--rootdir", str(tmp_path), *args, str(tmp_path)],
        cwd=tmp_path, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True, timeout=60,
    )
    return proc.returncode, proc.stdout


CRASHER = """
    import threading, time

    def crash_soon(name, delay=0.2):
        def body():
            time.sleep(delay)
            raise ValueError(f"planted in {name}")
        threading.Thread(target=body, name=name, daemon=True).start()
"""


def test_thread_exception_interrupts_a_sleeping_test(tmp_path):
    rc, out = run_files(tmp_path, {"test_a.py": CRASHER + """
    def test_sleeps():
        crash_soon("worker")
        time.sleep(30)
        print("the sleep ran to its end")

    def test_passes():
        pass
    """}, "-s")
    assert rc == 1, out
    assert "1 failed, 1 passed" in out, out
    assert "Exception in thread worker" in out and "ValueError: planted in worker" in out, out
    assert "the sleep ran to its end" not in out, out


def test_exception_in_a_thread_outliving_its_test_fails_the_next_one(tmp_path):
    rc, out = run_files(tmp_path, {"test_b.py": CRASHER + """
    def test_first():
        crash_soon("leftover", delay=0.5)

    def test_second():
        time.sleep(5)
    """})
    assert rc == 1, out
    assert "1 failed, 1 passed" in out, out
    assert "FAILED test_b.py::test_second" in out, out
    assert "Exception in thread leftover (a thread started during test_b.py::test_first" in out, out


def test_exception_after_the_last_test_fails_the_session(tmp_path):
    rc, out = run_files(tmp_path, {"test_c.py": CRASHER + """
    def test_only():
        crash_soon("late", delay=0.0)
        threading.Event().wait(0)  # return before the thread raises

    def teardown_module():
        time.sleep(0.5)
    """})
    assert rc == 1, out
    assert "Exception in thread late" in out, out


def test_cleanup_is_not_interrupted(tmp_path):
    rc, out = run_files(tmp_path, {"test_d.py": CRASHER + """
    def cleanup():
        crash_soon("during-cleanup", delay=0.0)
        time.sleep(0.5)
        print("cleanup finished")

    def test_body():
        try:
            pass
        finally:
            cleanup()
    """}, "-s")
    assert rc == 1, out
    assert "cleanup finished" in out, out
    assert "Exception in thread during-cleanup" in out, out


def test_a_passing_test_passes(tmp_path):
    rc, out = run_files(tmp_path, {"test_e.py": """
    import threading

    def test_threads_that_end_well():
        t = threading.Thread(target=lambda: None)
        t.start()
        t.join()
    """})
    assert rc == 0, out
    assert "1 passed" in out, out


def test_whole_test_limit_interrupts_a_blocked_main_thread(tmp_path):
    rc, out = run_files(tmp_path, {"test_f.py": """
    import threading

    def test_blocked_forever():
        lock = threading.Lock()
        lock.acquire()
        lock.acquire()  # never returns
    """}, "--test-timeout", "1")
    assert rc == 1, out
    assert "did not end within the whole-test limit of 1 s" in out, out
    assert "in test_blocked_forever\n    lock.acquire()  # never returns" in out, out


def test_a_dump_shows_threads_with_the_same_stack_once():
    # A hang with 60 sender threads must not print 60 identical stacks (issue 21's 2,280 lines).
    from tests.gotest import format_stacks

    release = threading.Event()
    threads = [threading.Thread(target=release.wait, name=f"raft1-send-{i}", daemon=True) for i in range(30)]
    lone = threading.Thread(target=lambda: release.wait(), name="lone-waiter", daemon=True)
    for t in threads + [lone]:
        t.start()
    dumps = []  # taken from another thread, as the watch thread takes it at a limit
    try:
        dumper = threading.Thread(target=lambda: dumps.append(format_stacks()), name="dumper")
        dumper.start()
        dumper.join()
        (dump,) = dumps
    finally:
        release.set()
        for t in threads + [lone]:
            t.join()
    assert dump.startswith("Thread MainThread (main):"), dump
    assert "30 threads like this: raft*-send-*:" in dump, dump
    assert "Thread lone-waiter:" in dump, dump
    assert "raft1-send-0" not in dump, dump

