"""Tests of mtests.py --scheduler (mtests_cluster.py) on a real Dask cluster.

Each cluster is a ``dask scheduler`` and two ``dask worker`` processes (one thread each, no
nanny, so that a worker is one process the test can kill) on 127.0.0.1, in their own process
groups, all stopped at the end with whatever they started.  The runs are the planted tests of
tests/mtests/sample/ (sample_cases.py, cluster_cases.py).
"""

import contextlib
import io
import json
import os
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest

import mtests
import mtests_cluster
from tests.mtests.test_mtests import pid_alive, sample_env, table_rows, wait_dead

# Real processes by the real clock: --sim runs them in real time.
pytestmark = pytest.mark.realtime

ROOT = Path(mtests.__file__).resolve().parent
SAMPLES = ROOT / "tests" / "mtests" / "sample"
START_LIMIT = 120.0  # seconds for a cluster to come up on a loaded machine (a hang guard)


class Cluster:
    """A scheduler and two workers; stop() leaves none of their processes behind."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.state = base / "state"  # the planted tests' shared folder
        self.state.mkdir(parents=True)
        self.env = {**sample_env(), "MTESTS_SAMPLE_STATE": str(self.state)}
        self.procs: list[subprocess.Popen] = []
        file = base / "scheduler.json"
        self.scheduler = self._start("scheduler", "scheduler", "--host", "127.0.0.1",
                                     "--port", "0", "--no-dashboard", "--scheduler-file", str(file))
        self.workers = [
            self._start(f"worker{i}", "worker", "--scheduler-file", str(file), "--host",
                        "127.0.0.1", "--nthreads", "1", "--no-nanny", "--no-dashboard",
                        "--local-directory", str(base / f"worker{i}"))
            for i in (1, 2)
        ]
        self.address = self._wait_for_workers(file)

    def _held(self) -> list[int]:
        held = self.state / "held"
        return [int(pid) for pid in held.read_text().split()] if held.exists() else []

    def reset_state(self) -> Path:
        """Clear what earlier runs of the planted tests left; the file of held runs' pids."""
        for p in self.state.iterdir():
            p.unlink()
        return self.state / "held"

    def held_pids(self, proc: subprocess.Popen, count: int) -> list[int]:
        """The pids of the first ``count`` held runs, once they are all running."""
        deadline = time.monotonic() + START_LIMIT
        while len(self._held()) < count:
            assert time.monotonic() < deadline and proc.poll() is None, self.logs()
            time.sleep(0.05)
        return self._held()[:count]

    def _start(self, name: str, *args: str) -> subprocess.Popen:
        with open(self.base / f"{name}.log", "wb") as log:
            proc = subprocess.Popen([sys.executable, "-m", "dask", *args], cwd=self.base,
                                    env=self.env, stdin=subprocess.DEVNULL, stdout=log,
                                    stderr=subprocess.STDOUT, start_new_session=True)
        self.procs.append(proc)
        return proc

    def logs(self) -> str:
        return "\n".join(f"--- {p.name}\n{p.read_text()[-3000:]}" for p in self.base.glob("*.log"))

    def _wait_for_workers(self, file: Path) -> str:
        deadline = time.monotonic() + START_LIMIT
        while not file.exists() or not file.read_text().strip():
            assert time.monotonic() < deadline, f"no scheduler file\n{self.logs()}"
            assert self.scheduler.poll() is None, f"the scheduler exited\n{self.logs()}"
            time.sleep(0.1)
        address = json.loads(file.read_text())["address"]
        from distributed import Client

        with Client(address, timeout="30s", set_as_default=False) as client:
            client.wait_for_workers(2, timeout=START_LIMIT)
        return address

    def stop(self) -> None:
        # the held runs too, each in its own group, should a failed test have left one
        groups = [p.pid for p in self.procs] + [pid for pid in self._held() if _is_held_run(pid)]
        for pid in groups:
            try:
                os.killpg(pid, signal.SIGKILL)  # with all it started
            except (ProcessLookupError, PermissionError):
                pass
        for p in self.procs:
            p.wait()

    def mtests(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, str(ROOT / "mtests.py"), "--scheduler", self.address, *args],
            cwd=ROOT, env=sample_env(), stdin=subprocess.DEVNULL, capture_output=True,
            text=True, timeout=timeout)

    @contextlib.contextmanager
    def mtests_running(self, *args: str):
        """mtests.py in the background, killed at the end of the block if still running."""
        proc = subprocess.Popen(
            [sys.executable, str(ROOT / "mtests.py"), "--scheduler", self.address, *args],
            cwd=ROOT, env=sample_env(), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True)
        try:
            yield proc
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()


def _is_held_run(pid: int) -> bool:
    """Whether pid is still a run of TestHeld3Z (and not a process that took its number)."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return b"cluster_cases.py::TestHeld3Z" in f.read()
    except OSError:
        return False


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    c = Cluster(tmp_path_factory.mktemp("cluster"))
    try:
        yield c
    finally:
        c.stop()


def test_runs_on_the_workers_count_fail_and_bring_logs_back(cluster, tmp_path):
    out = tmp_path / "out"
    r = cluster.mtests("--path", str(SAMPLES / "sample_cases.py"), "--path",
                       str(SAMPLES / "cluster_cases.py"), "-n", "2", "--timeout", "1m", "-o",
                       str(out), "Pass1X", "Flaky", "Page3Z")
    assert r.returncode == 1, r.stdout + r.stderr + cluster.logs()
    assert table_rows(r.stdout) == {"TestPass1X": (0, 2), "TestFlaky1X": (1, 2),
                                    "TestPage3Z": (2, 2)}
    assert "2 Dask workers (2 threads) at tcp://127.0.0.1:" in r.stdout
    # the failed runs' logs, and the pages the runs wrote, are here; passed runs left nothing
    assert sorted(p.name for p in out.iterdir()) == [
        "TestFlaky1X_2.log", "TestPage3Z_1.log", "TestPage3Z_2.log", "page-1.html", "page-2.html"]
    log = (out / "TestPage3Z_1.log").read_text()
    assert "sample failure with a page" in log
    assert "TestPage3Z iteration 1: exit status 1" in log and "on worker tcp://127.0.0.1:" in log
    # run in the worker's unpacked copy of the tree, not in this folder
    assert "sample: ran in " in log and "/mtests-tree-" in log.split("sample: ran in ", 1)[1]
    assert f"sample: ran in {ROOT}\n" not in log
    assert "even iteration 2" in (out / "TestFlaky1X_2.log").read_text()
    assert (out / "page-2.html").read_text() == "sample: page\n"
    assert "FAIL TestPage3Z iteration 2 (exit status 1, " in r.stdout
    # the uploaded tree is not left registered for the workers to come
    from distributed import Client

    with Client(cluster.address, timeout="30s", set_as_default=False) as client:
        plugins = client.run_on_scheduler(
            lambda dask_scheduler: [*dask_scheduler.worker_plugins, *dask_scheduler.plugins])
    assert not [p for p in plugins if "mtests" in p], plugins


def test_all_pass_under_sim_and_race(cluster, tmp_path):
    # --sim and --race reach every run on the workers; -a brings every log back.
    out = tmp_path / "out"
    r = cluster.mtests("--path", str(SAMPLES / "sample_cases.py"), "-n", "2", "-a", "-v",
                       "--race", "--sim-seed", "7", "-o", str(out), "Pass1X", "Verbose")
    assert r.returncode == 0, r.stdout + r.stderr + cluster.logs()
    assert table_rows(r.stdout) == {"TestPass1X": (0, 2), "TestVerbose2Y": (0, 2)}
    assert "simulated time with seed 7 in every run" in r.stdout
    log = (out / "TestVerbose2Y_2.log").read_text()
    assert "sample: VERBOSE=1\n" in log
    assert "--race --sim --sim-seed 7 tests/mtests/sample/sample_cases.py::TestVerbose2Y" in log


def test_shared_tree_runs_the_project_in_place(cluster, tmp_path):
    # The workers are on this machine, so they share its filesystem.
    out = tmp_path / "out"
    r = cluster.mtests("--shared-tree", "--path", str(SAMPLES / "cluster_cases.py"), "-n", "1",
                       "-o", str(out), "Page3Z")
    assert r.returncode == 1, r.stdout + r.stderr + cluster.logs()
    assert table_rows(r.stdout) == {"TestPage3Z": (1, 1)}
    log = (out / "TestPage3Z_1.log").read_text()
    assert f"sample: ran in {ROOT}\n" in log and "/mtests-tree-" not in log
    assert (out / "page-1.html").exists()


def test_a_run_past_its_timeout_is_killed_on_its_worker(cluster, tmp_path):
    out = tmp_path / "out"
    held = cluster.reset_state()
    r = cluster.mtests("--path", str(SAMPLES / "cluster_cases.py"), "-n", "1", "--timeout",
                       "10s", "-o", str(out), "Held3Z")
    assert r.returncode == 1, r.stdout + r.stderr + cluster.logs()
    assert table_rows(r.stdout) == {"TestHeld3Z": (1, 1)}
    assert "FAIL TestHeld3Z iteration 1 (timed out after 10.00s" in r.stdout
    assert "killed after the 10.00s timeout" in (out / "TestHeld3Z_1.log").read_text()
    pid = int(held.read_text().split()[0])
    assert wait_dead(pid), "the run outlived its timeout on the worker"


def test_ctrl_c_prints_the_table_and_kills_the_runs_on_the_workers(cluster, tmp_path):
    cluster.reset_state()
    out = tmp_path / "out"
    with cluster.mtests_running("--path", str(SAMPLES / "cluster_cases.py"), "-n", "2",
                                "--timeout", "5m", "-o", str(out), "Held3Z") as proc:
        pids = cluster.held_pids(proc, 2)  # one on each worker, held until killed
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stdout + stderr
    assert "Interrupted: 0 of 2 runs finished." in stdout
    assert table_rows(stdout) == {"TestHeld3Z": (0, 0)}
    for pid in pids:
        assert wait_dead(pid), f"run {pid} outlived the interrupted mtests on its worker"
    assert list(out.iterdir()) == []


def test_a_worker_that_joined_after_the_check_refuses_runs(cluster, monkeypatch, capsys):
    # The check at connect is skipped, as for a worker that joins later: the worker compares
    # the versions every run carries (here a planted msgpack of the client's) with its own.
    real = mtests_cluster.local_versions
    monkeypatch.setattr(mtests_cluster, "check_workers", lambda client: None)
    monkeypatch.setattr(mtests_cluster, "local_versions",
                        lambda: {**real(), "msgpack": "0.0.planted"})
    assert mtests.main(["--scheduler", cluster.address, "--path",
                        str(SAMPLES / "sample_cases.py"), "-n", "1", "Pass1X"]) == mtests.EXIT_FAILED
    out = capsys.readouterr().out
    assert "mtests: refused: worker tcp://127.0.0.1:" in out, out
    assert "this client msgpack 0.0.planted" in out
    assert table_rows(out) == {"TestPass1X": (0, 0)}


def test_a_worker_killed_mid_run_has_its_run_retried_and_counted_once(tmp_path):
    c = Cluster(tmp_path / "cluster")
    try:
        out = tmp_path / "out"
        with c.mtests_running("--path", str(SAMPLES / "cluster_cases.py"), "-n", "2", "-a",
                              "--timeout", "2m", "-o", str(out), "Held3Z") as proc:
            # both iterations are held, one on each worker (one thread each): kill the worker
            # of the first, then release the other
            victim_run = c.held_pids(proc, 2)[0]
            with open(f"/proc/{victim_run}/stat") as f:
                parent = int(f.read().split(") ")[1].split()[1])
            victim = next(w for w in c.workers if w.pid == parent)
            victim.kill()
            victim.wait()
            assert wait_dead(victim_run), "the run outlived its worker"
            # once mtests has seen the worker go, release the other run: the surviving worker
            # then takes the retry, which passes at once
            seen = []
            while not any("left; Dask hands its runs to the others" in ln for ln in seen):
                line = proc.stdout.readline()
                assert line, "".join(seen) + c.logs()
                seen.append(line)
            (c.state / "release").touch()
            stdout, stderr = proc.communicate(timeout=300)
            stdout = "".join(seen) + stdout
        assert proc.returncode == 0, stdout + stderr + c.logs()
        assert table_rows(stdout) == {"TestHeld3Z": (0, 2)}  # not 3
        assert "0 of 2 runs failed" in stdout
        logs = {p.name: p.read_text() for p in out.iterdir()}
        assert sorted(logs) == ["TestHeld3Z_1.log", "TestHeld3Z_2.log"]
        retried = [n for n, text in logs.items() if "sample: retry of iteration" in text]
        assert len(retried) == 1, logs
    finally:
        c.stop()
    for p in c.procs:
        assert not pid_alive(p.pid)


def test_a_worker_with_other_versions_is_refused(cluster, monkeypatch, capsys):
    # A client whose msgpack differs from the workers' (here: a planted version) is told
    # which workers differ and how, before anything runs.
    real = mtests_cluster.local_versions

    def planted():
        return {**real(), "msgpack": "0.0.planted"}

    monkeypatch.setattr(mtests_cluster, "local_versions", planted)
    assert mtests.main(["--scheduler", cluster.address, "--path",
                        str(SAMPLES / "sample_cases.py"), "Pass1X"]) == mtests.EXIT_USAGE
    err = capsys.readouterr().err
    assert err.startswith("mtests.py: refused: worker tcp://127.0.0.1:"), err
    assert err.count("this client msgpack 0.0.planted") == 2, err
    assert f"msgpack {real()['msgpack']}" in err


def test_version_mismatch_message():
    ours = {"python": "3.11.7", "msgpack": "1.0.8"}
    assert mtests_cluster.version_mismatch("w", dict(ours), ours) is None
    assert mtests_cluster.version_mismatch("tcp://h:1", {"python": "3.12.1", "msgpack": None},
                                           ours) == (
        "worker tcp://h:1 has python 3.12.1, msgpack missing, "
        "this client python 3.11.7, msgpack 1.0.8")


def test_unreachable_scheduler_and_missing_tree_files_are_usage_errors(capsys, tmp_path):
    assert mtests.main(["--scheduler", "tcp://127.0.0.1:1", "--path",
                        str(SAMPLES / "sample_cases.py"), "Pass1X"]) == mtests.EXIT_USAGE
    assert "cannot reach the Dask scheduler at tcp://127.0.0.1:1" in capsys.readouterr().err
    assert mtests.main(["--shared-tree", "2A"]) == mtests.EXIT_USAGE
    assert "--shared-tree goes with --scheduler" in capsys.readouterr().err


def test_the_shipped_tree_has_uncommitted_changes(tmp_path):
    repo = tmp_path / "repo"
    repo.mkdir()
    git = lambda *a: subprocess.run(["git", "-C", str(repo), *a], check=True,  # noqa: E731
                                    capture_output=True)
    git("init", "-q")
    (repo / ".gitignore").write_text("ignored.txt\n")
    (repo / "mtests.py").write_text("committed\n")
    (repo / "mtests_cluster.py").write_text("")
    (repo / "gone.py").write_text("")
    git("add", ".")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "x")
    (repo / "mtests.py").write_text("changed, not committed\n")
    (repo / "new.py").write_text("untracked\n")
    (repo / "ignored.txt").write_text("")
    (repo / "gone.py").unlink()
    assert mtests_cluster.tree_files(repo) == [".gitignore", "mtests.py", "mtests_cluster.py",
                                               "new.py"]
    data = mtests_cluster.build_zip(repo, with_tree=True)
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        assert z.read("tree/mtests.py") == b"changed, not committed\n"
        assert z.read("mtests.py") == b"changed, not committed\n"  # what the workers import
        assert "tree/ignored.txt" not in z.namelist()
    # the same files give the same bytes, hence the same tree name on the workers
    assert mtests_cluster.build_zip(repo, with_tree=True) == data
