"""The --sim mode finds what it promises: planted bugs fail, seeds replay.

Each test runs pytest --sim in a subprocess on a small test file with a bug
planted in it, and checks the failure: a deadlock at once with every thread's
wait and stack, a busy loop by the watchdog, a lost update under
--sim-preempt, a nondeterministic test under --sim-check-determinism; and a
seed's replay command reproduces its run.
"""

import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

# These run real pytest processes: --sim runs them in real time.
pytestmark = pytest.mark.realtime

ROOT = Path(__file__).resolve().parents[2]


def run_sim(tmp_path, text, *args, timeout=60):
    """Run pytest --sim (with tests/gotest.py, as the lab tests are) on one test file."""
    (tmp_path / "test_planted.py").write_text(textwrap.dedent(text))
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT)] + [p for p in [env.get("PYTHONPATH")] if p])
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-s", "-p", "no:cacheprovider", "-p", "tests.gotest",
         "-p", "sim.pytest_plugin", "-p", "no:threadexception", "-c", os.devnull,
         "--rootdir", str(tmp_path), "--sim", *args, str(tmp_path)],
        cwd=tmp_path, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True, timeout=timeout,
    )
    return proc.returncode, proc.stdout


# Each planted bug must be caught by its own check, not by the whole-test limit that ends any
# hang in virtual time (this message), nor by the subprocess timeout.  No real-time bound is
# asserted: on a loaded machine the same run takes several times as long.
LIMIT = "did not end within the whole-test limit"


LOCK_ORDER = """
    import threading, time

    def test_lock_order():
        a, b = threading.Lock(), threading.Lock()

        def one():
            with a:
                time.sleep(0.1)
                with b:
                    pass

        def two():
            with b:
                time.sleep(0.1)
                with a:
                    pass

        t1 = threading.Thread(target=one, name="one", daemon=True)
        t2 = threading.Thread(target=two, name="two", daemon=True)
        t1.start(); t2.start()
        t1.join(); t2.join()
"""


def test_lock_order_deadlock_fails_at_once_with_every_wait(tmp_path):
    rc, out = run_sim(tmp_path, LOCK_ORDER, "--sim-seed", "1")
    assert rc == 1, out
    assert "sim: deadlock: every thread is blocked and no timeout is pending" in out, out
    assert "Thread MainThread (main): waiting for thread one to end" in out, out
    assert "Thread one: waiting for a lock" in out and "Thread two: waiting for a lock" in out, out
    # each stack ends at the line that waits
    assert re.search(r"in one\n.*with b:", out) and re.search(r"in two\n.*with a:", out), out
    assert f"replay: {sys.executable} -m pytest test_planted.py::test_lock_order --sim --sim-seed 1" in out, out
    # pasted where it was printed, with no venv on the PATH, the replay's interpreter has the project's packages
    python = re.search(r"replay: (\S+) -m pytest", out).group(1)
    res = subprocess.run(f"{python} -c 'import pytest, msgpack'", shell=True, cwd=tmp_path,
                         capture_output=True, text=True, env={"PATH": "/usr/bin:/bin"})
    assert res.returncode == 0, res.stderr
    assert LIMIT not in out, out  # at once: no timeout had to expire


BUSY = """
    import threading, time

    def test_busy_wait():
        flag = []

        def setter():
            time.sleep(0.5)
            flag.append(1)

        threading.Thread(target=setter, name="setter", daemon=True).start()
        while not flag:  # spins: the virtual clock never reaches the setter's 0.5 s
            pass
"""


def test_busy_wait_is_reported_with_its_stack(tmp_path):
    rc, out = run_sim(tmp_path, BUSY, "--sim-seed", "1", "--sim-spin-limit", "1")
    assert rc == 1, out
    assert "sim: thread MainThread ran" in out and "without blocking (--sim-spin-limit 1)" in out, out
    assert re.search(r">\s+while not flag:", out), out  # the traceback points at the spinning line
    assert LIMIT not in out, out


UNLOCKED_COUNTER = """
    import threading

    class Counter:
        def __init__(self):
            self.mu = threading.Lock()
            self.n = 0

        def add(self):
            n = self.n  # planted: read outside the lock ...
            with self.mu:  # ... a lock release may switch threads here ...
                pass
            self.n = n + 1  # ... and this write loses the other thread's updates

    def test_counter():
        c = Counter()

        def work():
            for _ in range(100):
                c.add()

        ts = [threading.Thread(target=work, daemon=True) for _ in range(2)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        assert c.n == 200, f"lost updates: {c.n}"
"""


def test_unlocked_counter_passes_without_preemption(tmp_path):
    # One thread runs until it blocks: without preemption the race never shows, as under the GIL.
    rc, out = run_sim(tmp_path, UNLOCKED_COUNTER, "--sim-seed", "1")
    assert rc == 0, out


def test_unlocked_counter_loses_updates_under_preemption(tmp_path):
    rc, out = run_sim(tmp_path, UNLOCKED_COUNTER, "--sim-seed", "1", "--sim-preempt")
    assert rc == 1, out
    lost = re.search(r"lost updates: (\d+)", out)
    assert lost and int(lost.group(1)) < 200, out
    assert f"replay: {sys.executable} -m pytest test_planted.py::test_counter --sim --sim-seed 1 --sim-preempt" in out, out
    # The replay gives the same run: the same count of lost updates.
    rc2, out2 = run_sim(tmp_path, UNLOCKED_COUNTER, "--sim-seed", "1", "--sim-preempt")
    assert rc2 == 1 and re.search(r"lost updates: (\d+)", out2).group(1) == lost.group(1), out2


SEEDED = """
    import random, threading, time

    def test_seeded():
        log = []

        def worker(i):
            for k in range(5):
                time.sleep(random.random() / 100)
                log.append((i, k, round(time.monotonic(), 6)))

        ts = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(3)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        print("LOG", log)
        assert False, "planted failure"
"""


def test_a_seed_replays_its_run_and_another_seed_does_not(tmp_path):
    runs = [run_sim(tmp_path, SEEDED, "--sim-seed", seed)[1] for seed in ("5", "5", "6")]
    logs = [re.search(r"^LOG .*$", out, re.M).group(0) for out in runs]
    assert logs[0] == logs[1], runs
    assert logs[0] != logs[2], runs


def test_a_run_without_a_seed_names_the_one_it_chose(tmp_path):
    rc, out = run_sim(tmp_path, SEEDED)
    assert rc == 1, out
    seed = re.search(r"replay: \S+ -m pytest test_planted.py::test_seeded --sim --sim-seed (\d+)", out).group(1)
    _, again = run_sim(tmp_path, SEEDED, "--sim-seed", seed)
    assert re.search(r"^LOG .*$", out, re.M).group(0) == re.search(r"^LOG .*$", again, re.M).group(0), again


NONDETERMINISTIC = """
    import threading, time
    from sim import realtime

    def test_depends_on_the_real_clock():
        def worker():
            # planted: how long to sleep comes from outside the simulation
            time.sleep(int(realtime.perf_counter() * 1e6) % 7 / 1000)

        ts = [threading.Thread(target=worker, daemon=True) for _ in range(8)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
"""


def test_check_determinism_reports_the_first_divergence(tmp_path):
    rc, out = run_sim(tmp_path, NONDETERMINISTIC, "--sim-seed", "1", "--sim-check-determinism")
    assert rc == 1, out
    assert "sim: the same seed gave two different runs: decision" in out, out


def test_check_determinism_passes_a_deterministic_test(tmp_path):
    rc, out = run_sim(tmp_path, UNLOCKED_COUNTER, "--sim-seed", "1", "--sim-check-determinism")
    assert rc == 0, out


THREAD_EXCEPTION = """
    import threading, time

    def test_crash():
        def body():
            time.sleep(0.2)
            raise ValueError("planted in a thread")

        threading.Thread(target=body, name="crasher", daemon=True).start()
        time.sleep(1000)  # virtual: the crash ends the test long before
"""


def test_an_exception_in_a_thread_fails_the_test_under_sim(tmp_path):
    rc, out = run_sim(tmp_path, THREAD_EXCEPTION, "--sim-seed", "1")
    assert rc == 1, out
    assert "Exception in thread crasher" in out and "ValueError: planted in a thread" in out, out
    assert LIMIT not in out, out


@pytest.mark.needs_lab
def test_a_hung_raft_fails_at_the_limit_in_virtual_time(tmp_path):
    # The fidelity plant: the applier sends on applyCh holding mu while the tester's
    # apply loop calls Snapshot.  Threads still poll with timeouts, so it is no
    # deadlock; the whole-test limit, counted in virtual seconds, ends it.
    env = dict(os.environ, PYLABS_PLANT="applier_holds_mu")
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "tests.fidelity.plants",
         "tests/raft/test_raft.py::TestSnapshotBasic2D", "--sim", "--sim-seed", "1", "--test-timeout", "60",
         "--no-lockwatch"],  # the lock watchdog would fail it first (tests/lockwatch)
        cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
        # The run is CPU-bound (seconds for its 60 virtual seconds; a loaded machine
        # stretched 180 of them past 120 s): the timeout is a hang guard only, just inside
        # this test's own whole-test limit (180 s real).
        stderr=subprocess.STDOUT, text=True, timeout=175,
    )
    out = proc.stdout
    assert proc.returncode == 1, out
    assert "TestSnapshotBasic2D did not end within the whole-test limit of 60 s of virtual time" in out, out
    assert re.search(r"Thread config-applier-\d: waiting for a lock", out), out


REAL_BLOCK = """
    from sim import realtime

    def test_blocks_in_real_time():
        realtime.sleep(60)  # outside the simulation: the virtual clock never gets there
"""


def test_the_real_time_backstop_is_a_multiple_of_the_limit(tmp_path):
    # Under --sim the limit counts virtual seconds; a test blocked where the simulation
    # cannot see is ended in real time, after SIM_REAL_LIMIT_FACTOR times the limit, so
    # that a CPU-bound simulated test on a loaded machine is not cut short.
    from tests.gotest import SIM_REAL_LIMIT_FACTOR

    rc, out = run_sim(tmp_path, REAL_BLOCK, "--sim-seed", "1", "--test-timeout", "1")
    assert rc == 1, out
    assert f"did not end within the whole-test limit of {SIM_REAL_LIMIT_FACTOR} s (--test-timeout" in out, out

