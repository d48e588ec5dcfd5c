"""Tests of mtests.py, the parallel repeated-test runner.

The end-to-end tests run mtests.py on tests/mtests/sample/sample_cases.py, whose tests pass,
fail, hang or fail on even iterations.  Timeouts are a few seconds so the file stays fast.
"""

import io
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import mtests

# These drive real mtests processes by the real clock: --sim runs them in real time.
pytestmark = pytest.mark.realtime

ROOT = Path(mtests.__file__).resolve().parent
SAMPLE = ROOT / "tests" / "mtests" / "sample" / "sample_cases.py"
SAMPLE_ID = "tests/mtests/sample/sample_cases.py"


def sample_env():
    env = {k: v for k, v in os.environ.items() if k not in ("VERBOSE", "NO_COLOR")}
    # The sample needs no plugin; not loading the installed ones saves time on every run.
    env["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = "1"
    return env


def run_mtests(*args, env_extra=None, timeout=60):
    env = sample_env()
    env.update(env_extra or {})
    return subprocess.run(
        [sys.executable, str(ROOT / "mtests.py"), "--path", str(SAMPLE), *args],
        cwd=ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def table_rows(stdout):
    """{test: (failed, total)} read back from the printed table."""
    rows = {}
    for line in stdout.splitlines():
        m = re.fullmatch(r"│ (\S+)\s+│\s+(\d+) │\s+(\d+) │\s+(.*?) │", line)
        if m:
            rows[m.group(1)] = (int(m.group(2)), int(m.group(3)))
    return rows


# ------------------------------------------------------------------ pure functions


@pytest.mark.parametrize(
    "text, seconds",
    [("90s", 90), ("2m", 120), ("1m30s", 90), ("1.5h", 5400), ("500ms", 0.5), ("0", 0),
     ("10", 10), ("1h2m3s", 3723)],
)
def test_parse_duration(text, seconds):
    assert mtests.parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "2x", "m", "1m-3s", "s10"])
def test_parse_duration_rejects(text):
    with pytest.raises(ValueError):
        mtests.parse_duration(text)


def test_function_name():
    assert mtests.function_name("tests/raft/test_raft.py::TestBackup2B") == "TestBackup2B"
    assert mtests.function_name("a/b.py::Cls::TestX[1-2]") == "TestX"


def cases(*nodeids):
    return [mtests.TestCase(n, mtests.function_name(n)) for n in nodeids]


def test_select_like_go_test_run():
    all_cases = cases(
        "tests/raft/test_raft.py::TestInitialElection2A",
        "tests/raft/test_raft.py::TestBackup2B",
        "tests/raft/test_raft.py::TestPersist12C",
        "tests/kvraft/test_kvraft.py::TestSnapshotRPC3B",
        "tests/raft/test_raft.py::TestSnapshotBasic2D",
    )
    names = lambda sel: [c.label for c in sel]  # noqa: E731
    assert names(mtests.select(all_cases, ["2B"])) == ["TestBackup2B"]
    # a union, kept in collection order, not in pattern order
    assert names(mtests.select(all_cases, ["3B", "2A"])) == [
        "TestInitialElection2A", "TestSnapshotRPC3B"]
    assert names(mtests.select(all_cases, ["Snapshot.*2D$"])) == ["TestSnapshotBasic2D"]
    assert names(mtests.select(all_cases, ["^Test.*2[BC]"])) == [
        "TestBackup2B", "TestPersist12C"]
    assert mtests.select(all_cases, ["4A"]) == []
    # tests collected with a marker are chosen whatever their name
    marked = {"tests/raft/test_raft.py::TestBackup2B"}
    assert names(mtests.select(all_cases, ["4A", "2A"], marked)) == [
        "TestInitialElection2A", "TestBackup2B"]


def test_select_labels_duplicate_names_by_node_id():
    sel = mtests.select(cases("a/test_x.py::TestBasic", "b/test_y.py::TestBasic",
                              "b/test_y.py::TestOther"), ["Test"])
    assert [c.label for c in sel] == ["a/test_x.py::TestBasic", "b/test_y.py::TestBasic",
                                      "TestOther"]
    assert mtests.log_name(sel[0].label, 3) == "a_test_x.py_TestBasic_3.log"


def test_render_table_layout():
    a = mtests.TestStats(mtests.TestCase("t.py::TestInitialElection2A", "TestInitialElection2A"))
    a.durations = [3.0, 4.0, 5.0]
    b = mtests.TestStats(mtests.TestCase("t.py::TestBackup2B", "TestBackup2B"), failed=1)
    b.durations = [17.94]
    c = mtests.TestStats(mtests.TestCase("t.py::TestCount2B", "TestCount2B"))
    expected = "\n".join([
        "┏━━━━━━━━━━━━━━━━━━━━━━━┳━━━━━━━━┳━━━━━━━┳━━━━━━━━━━━━━━┓",
        "┃ Test                  ┃ Failed ┃ Total ┃         Time ┃",
        "┡━━━━━━━━━━━━━━━━━━━━━━━╇━━━━━━━━╇━━━━━━━╇━━━━━━━━━━━━━━┩",
        "│ TestInitialElection2A │      0 │     3 │  4.00 ± 1.00 │",
        "│ TestBackup2B          │      1 │     1 │ 17.94 ± 0.00 │",
        "│ TestCount2B           │      0 │     0 │            - │",
        "└───────────────────────┴────────┴───────┴──────────────┘",
    ])
    assert mtests.render_table([a, b, c]) == expected
    colored = mtests.render_table([a, b, c], color=True)
    assert "\x1b[" in colored
    assert re.sub(r"\x1b\[[0-9;]*m", "", colored) == expected


def test_queue_interleaves_tests(tmp_path):
    cs = cases("t.py::TestA", "t.py::TestB")
    r = mtests.Runner(cs, 3, 2, 0, tmp_path, False, 0, [])
    assert [(c.name, i) for c, i in r.queue] == [
        ("TestA", 1), ("TestB", 1), ("TestA", 2), ("TestB", 2), ("TestA", 3), ("TestB", 3)]


def test_progress_plain_and_tty():
    plain = io.StringIO()
    p = mtests.Progress(plain, tty=False, interval=3600)
    p.update(0, 10, 0, 2)
    p.update(1, 10, 0, 2)  # within the interval: no new line
    p.message("FAIL x")
    lines = plain.getvalue().splitlines()
    assert lines[0].startswith("[0/10] failed: 0, running: 2")
    assert lines[1:] == ["FAIL x"]

    tty = io.StringIO()
    p = mtests.Progress(tty, tty=True)
    p.update(3, 10, 1, 2)
    p.message("FAIL y")
    p.finish()
    out = tty.getvalue()
    assert out.startswith("\r\x1b[2K[3/10] failed: 1, running: 2")
    assert "\r\x1b[2KFAIL y\n" in out
    assert "\n" not in out.replace("FAIL y\n", "")  # the status line is redrawn in place


# ------------------------------------------------------------------ the command


def test_list_selection_and_usage_errors():
    r = run_mtests("-l", "1X")
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["TestPass1X", "TestFail1X", "TestHang1X", "TestFlaky1X"]

    r = run_mtests("-l", "Pass2Y", "^TestFail")  # union, in collection order
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["TestFail1X", "TestPass2Y"]

    r = run_mtests("-l", "4A")
    assert r.returncode == 2 and "no test matches 4A" in r.stderr

    # A plain word also selects by marker; a regex does not.
    r = run_mtests("-l", "4B", "Pass2Y")
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["TestPass2Y", "TestMarkedOnly"]
    r = run_mtests("-l", "4B$")
    assert r.returncode == 2 and "no test matches 4B$" in r.stderr

    assert run_mtests("-l", "(").returncode == 2
    assert run_mtests("--timeout", "2x", "1X").returncode == 2


def test_missing_dependency_is_named_in_one_line(monkeypatch, capsys):
    # Outside the venv msgpack is missing: one line naming it and the venv, not a pile of
    # collection errors followed by "no test matches".
    monkeypatch.setattr(mtests, "REQUIRED_MODULES", ("pytest", "no_such_module_pylabs"))
    assert mtests.main(["-l", "2A"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert "has no no_such_module_pylabs" in err and ".venv/bin/python mtests.py" in err, err


def test_dependencies_of_the_runs_are_checked():
    assert set(mtests.REQUIRED_MODULES) >= {"pytest", "msgpack"}
    assert mtests.missing_modules() == []  # this venv has them


def test_counts_failures_and_keeps_failed_output(tmp_path):
    out = tmp_path / "out"
    r = run_mtests("-n", "2", "--workers", "4", "--timeout", "20s", "-o", str(out),
                   "Pass1X", "Fail1X", "Flaky")
    assert r.returncode == 1, r.stdout + r.stderr
    assert table_rows(r.stdout) == {
        "TestPass1X": (0, 2), "TestFail1X": (2, 2), "TestFlaky1X": (1, 2)}
    # rows in collection order, whatever order the runs finished in
    assert [ln.split()[1] for ln in r.stdout.splitlines() if ln.startswith("│ ")] == [
        "TestPass1X", "TestFail1X", "TestFlaky1X"]
    assert sorted(p.name for p in out.iterdir()) == [
        "TestFail1X_1.log", "TestFail1X_2.log", "TestFlaky1X_2.log"]
    log = (out / "TestFail1X_1.log").read_text()
    assert "sample: about to fail" in log and "sample failure" in log
    assert f"{SAMPLE_ID}::TestFail1X iteration 1: exit status 1" in log
    assert "even iteration 2" in (out / "TestFlaky1X_2.log").read_text()
    # every failure is announced with the path of its log
    assert "FAIL TestFail1X iteration 2 (exit status 1, " in r.stdout
    assert str(out / "TestFlaky1X_2.log") in r.stdout
    assert re.search(r"3 of 6 runs failed; wall time \d+\.\d\ds", r.stdout)


def test_all_pass_archive_and_verbose(tmp_path):
    out = tmp_path / "out"
    r = run_mtests("-n", "1", "-a", "-v", "-o", str(out), "Pass1X", "Verbose")
    assert r.returncode == 0, r.stdout + r.stderr
    assert table_rows(r.stdout) == {"TestPass1X": (0, 1), "TestVerbose2Y": (0, 1)}
    assert sorted(p.name for p in out.iterdir()) == ["TestPass1X_1.log", "TestVerbose2Y_1.log"]
    assert "sample: pass" in (out / "TestPass1X_1.log").read_text()
    assert "sample: VERBOSE=1\n" in (out / "TestVerbose2Y_1.log").read_text()



def test_run_environment(tmp_path, monkeypatch):
    monkeypatch.delenv("VERBOSE", raising=False)
    quiet = mtests.Runner([], 1, 1, 0, tmp_path, False, 0, [])._env(7)
    assert "VERBOSE" not in quiet and quiet["MTESTS_ITERATION"] == "7"
    assert mtests.Runner([], 1, 1, 0, tmp_path, False, 1, [])._env(1)["VERBOSE"] == "1"


def test_race_and_pytest_args_reach_every_run():
    args = mtests.build_parser().parse_args(["--race", "-p", "-k 'x y'", "2A"])
    assert mtests.runner_pytest_args(args) == ["-k", "x y", "--race"]
    assert mtests.runner_pytest_args(mtests.build_parser().parse_args(["2A"])) == []


# ------------------------------------------------------------------ simulated time
# The sim/ plugin is not needed: these check the commands and lines mtests builds.


def parse(*argv):
    return mtests.build_parser().parse_args([*argv, "2A"])


def test_sim_flags_and_what_they_imply(capsys):
    assert mtests.sim_options(parse()) is None
    assert mtests.sim_options(parse("--race")) is None
    assert mtests.sim_options(parse("--sim")) == mtests.Sim(seed=None, preempt=False)
    assert mtests.sim_options(parse("--sim-seed", "42")) == mtests.Sim(seed=42, preempt=False)
    assert mtests.sim_options(parse("--sim-preempt")) == mtests.Sim(seed=None, preempt=True)
    assert mtests.sim_options(parse("--sim", "--sim-seed=0", "--sim-preempt")) == mtests.Sim(0, True)
    # the plugin options are not among the other pytest arguments: the Runner adds them
    assert mtests.runner_pytest_args(parse("--sim-seed", "42", "--race")) == ["--race"]
    with pytest.raises(SystemExit):
        parse("--sim-seed", "x")
    assert "argument --sim-seed: invalid int value: 'x'" in capsys.readouterr().err


def test_sim_run_commands_carry_their_own_seed(tmp_path):
    case = mtests.TestCase("tests/raft/test_raft.py::TestBackup2B", "TestBackup2B")
    fresh = mtests.Runner([case], 1, 1, 0, tmp_path, False, 0, ["-k", "x", "--race"],
                          mtests.Sim())
    seeds = {fresh.sim.run_seed() for _ in range(20)}
    assert len(seeds) > 1 and all(0 <= s < 2**32 for s in seeds)
    assert fresh._command(case, 7)[-7:] == [
        "-k", "x", "--race", "--sim", "--sim-seed", "7", "tests/raft/test_raft.py::TestBackup2B"]

    fixed = mtests.Runner([case], 1, 1, 0, tmp_path, False, 0, [], mtests.Sim(123, preempt=True))
    assert {fixed.sim.run_seed() for _ in range(5)} == {123}
    assert fixed._command(case, 123)[-5:] == [
        "--sim", "--sim-seed", "123", "--sim-preempt", "tests/raft/test_raft.py::TestBackup2B"]

    plain = mtests.Runner([case], 1, 1, 0, tmp_path, False, 0, [])
    assert not any(a.startswith("--sim") for a in plain._command(case))


def test_sim_collection_gets_no_seed(monkeypatch, capsys):
    # Collection is a pytest call of its own: it gets --sim (a missing plugin then fails
    # there, once) but never a seed, which belongs to each run.
    calls = []

    def fake_collect(paths, pytest_args):
        calls.append(list(pytest_args))
        return cases("tests/raft/test_raft.py::TestInitialElection2A")

    monkeypatch.setattr(mtests, "collect", fake_collect)
    assert mtests.main(["-l", "--sim-seed", "9", "--sim-preempt", "--race", "2A"]) == 0
    assert capsys.readouterr().out.split() == ["TestInitialElection2A"]
    assert calls and all(c[:3] == ["--race", "--sim", "--sim-preempt"] for c in calls), calls
    assert not any("--sim-seed" in c or "9" in c for c in calls), calls


@pytest.mark.parametrize("given", ["--sim", "--sim-seed 3", "--sim-seed=3", "--sim-preempt"])
def test_sim_options_are_refused_in_pytest_args(given, capsys):
    # mtests must choose (and report) the seeds itself.
    assert mtests.main(["--sim", f"--pytest-args={given}", "-l", "2A"]) == 2
    assert "to mtests.py itself" in capsys.readouterr().err
    # an option of the plugin that mtests does not set goes through
    assert mtests.sim_options_in(["--sim-check-determinism", "-k", "--sim"]) == ["--sim"]


def test_replay_command_names_an_interpreter_that_has_the_project(tmp_path):
    # Pasted from the project folder, the replay's interpreter must find pytest and msgpack
    # (a bare python3 outside the venv ends in a pytest internal error).
    assert mtests.PYTHON in (os.path.relpath(sys.executable, ROOT), sys.executable)
    res = subprocess.run(f"{mtests.PYTHON} -c 'import pytest, msgpack'", shell=True, cwd=ROOT,
                         capture_output=True, text=True, env={"PATH": "/usr/bin:/bin"})
    assert res.returncode == 0, res.stderr


def test_replay_command(monkeypatch, tmp_path):
    monkeypatch.chdir(ROOT)
    nodeid = "tests/raft/test_raft.py::TestBackup2B"
    assert mtests.replay_command(nodeid, mtests.Sim(), 3735928559, []) == (
        f"{mtests.PYTHON} -m pytest tests/raft/test_raft.py::TestBackup2B --sim --sim-seed 3735928559")
    assert mtests.replay_command(nodeid, mtests.Sim(preempt=True), 5, ["--race", "-k", "a b"],
                                 verbose=1) == (
        f"VERBOSE=1 {mtests.PYTHON} -m pytest tests/raft/test_raft.py::TestBackup2B --sim --sim-seed 5 "
        "--sim-preempt --race -k 'a b'")
    # node ids are relative to the project, wherever mtests was started
    monkeypatch.chdir(tmp_path)
    assert mtests.replay_command("t.py::TestX[1]", mtests.Sim(), 1, []) == (
        f"cd {ROOT} && {mtests.PYTHON} -m pytest 't.py::TestX[1]' --sim --sim-seed 1")


def failed_run(runner, nodeid, iteration, seed, **kw):
    case = next(c for c in runner.cases if c.nodeid == nodeid)
    r = mtests.RunResult(case, iteration, 1, 2.5, log=Path(f"/out/{case.name}_{iteration}.log"),
                         seed=seed, **kw)
    runner._record(r)
    return r


def test_sim_failure_is_reported_with_seed_and_replay(tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)
    cs = cases("tests/raft/test_raft.py::TestBackup2B", "tests/raft/test_raft.py::TestCount2B")
    r = mtests.Runner(cs, 2, 1, 60, tmp_path, False, 0, [], mtests.Sim(preempt=True))
    failed_run(r, cs[1].nodeid, 1, 77)
    failed_run(r, cs[0].nodeid, 2, 4000000000, timed_out=True)
    assert r.messages == [
        "FAIL TestCount2B iteration 1 (exit status 1, 2.50s, seed 77): /out/TestCount2B_1.log\n"
        f"  replay: {mtests.PYTHON} -m pytest tests/raft/test_raft.py::TestCount2B --sim --sim-seed 77 "
        "--sim-preempt",
        "FAIL TestBackup2B iteration 2 (timed out after 1m00.00s, 2.50s, seed 4000000000): "
        "/out/TestBackup2B_2.log\n"
        f"  replay: {mtests.PYTHON} -m pytest tests/raft/test_raft.py::TestBackup2B --sim "
        "--sim-seed 4000000000 --sim-preempt",
    ]
    assert mtests.render_seeds(r.failures, r.replay).splitlines() == [
        "Seed        Failed run                Replay",
        f"77          TestCount2B iteration 1   {mtests.PYTHON} -m pytest tests/raft/test_raft.py::TestCount2B "
        "--sim --sim-seed 77 --sim-preempt",
        f"4000000000  TestBackup2B iteration 2  {mtests.PYTHON} -m pytest tests/raft/test_raft.py::TestBackup2B "
        "--sim --sim-seed 4000000000 --sim-preempt",
    ]

    # without --sim: the FAIL line as before, and no seed list
    plain = mtests.Runner(cs, 1, 1, 0, tmp_path, False, 0, [])
    failed_run(plain, cs[0].nodeid, 1, None)
    assert plain.messages == [
        "FAIL TestBackup2B iteration 1 (exit status 1, 2.50s): /out/TestBackup2B_1.log"]


def pid_alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ")[1][0] != "Z"
    except FileNotFoundError:
        return False


def wait_dead(pid, limit=30.0):
    # only a process that survives waits this long: a killed one is gone at once
    deadline = time.monotonic() + limit
    while pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    return not pid_alive(pid)


def test_timeout_kills_hanging_run(tmp_path):
    # TestHang1X never ends: mtests.py returns (within run_mtests's limit) only by killing it
    out = tmp_path / "out"
    pidfile = tmp_path / "pids"
    # 10 s: the run must get past pytest's start-up, which takes seconds on a loaded machine
    # (with 2 s, this test failed once in a student export run while the machine was loaded).
    r = run_mtests("-n", "1", "--timeout", "10s", "-o", str(out), "Hang",
                   env_extra={"MTESTS_SAMPLE_PIDFILE": str(pidfile)})
    assert r.returncode == 1, r.stdout + r.stderr
    assert table_rows(r.stdout) == {"TestHang1X": (1, 1)}
    assert "FAIL TestHang1X iteration 1 (timed out after 10.00s" in r.stdout
    log = (out / "TestHang1X_1.log").read_text()
    assert "sample: hanging" in log
    assert "iteration 1: killed after the 10.00s timeout" in log
    pid = int(pidfile.read_text().split()[0])
    assert wait_dead(pid), "the hanging run survived its timeout"


def test_sigint_prints_partial_table_and_kills_runs(tmp_path):
    out = tmp_path / "out"
    pidfile = tmp_path / "pids"
    env = sample_env()
    env["MTESTS_SAMPLE_PIDFILE"] = str(pidfile)
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "mtests.py"), "--path", str(SAMPLE), "-n", "3",
         "--workers", "2", "--timeout", "1m", "-o", str(out), "Hang"],
        cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True,
    )
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if pidfile.exists() and len(pidfile.read_text().split()) >= 2:
                break
            time.sleep(0.05)
        else:
            pytest.fail("the hanging runs never started")
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=15)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, stdout + stderr
    assert "Interrupted: 0 of 3 runs finished." in stdout
    assert table_rows(stdout) == {"TestHang1X": (0, 0)}
    assert "┏" in stdout and "└" in stdout
    for pid in map(int, pidfile.read_text().split()):
        assert wait_dead(pid), f"run {pid} outlived the interrupted runner"
    assert list(out.iterdir()) == []  # interrupted runs are neither counted nor kept
