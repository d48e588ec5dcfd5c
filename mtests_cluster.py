"""mtests.py --scheduler: the runs as tasks of a Dask ``distributed`` cluster.

    python3 mtests.py --scheduler tcp://HOST:8786 [--shared-tree] [mtests options] PATTERN...

Each run (one test, one iteration) is a Dask task that starts ``python -m pytest ... NODEID``
as a subprocess on a worker, in its own process group, exactly as mtests.py does on this
machine (same command, seed, variables and ``--timeout``, which is enforced on the worker);
the task sends back the exit status, the time and, for a failed run (every run with ``-a``),
its output and the files it wrote into ``PYLABS_OUT``, which land in the local output folder.
Retrying the runs of a worker that dies is Dask's: the scheduler hands them to another worker
and the client gets one result per run, so a run is counted once.  On Linux a run is killed
with the worker that started it (PR_SET_PDEATHSIG), so that a dead worker leaves no run behind.

The project goes to the workers as a zip of the working tree (what git tracks plus untracked,
not ignored files, so uncommitted changes run), sent with Dask's UploadFile plugin, the one
behind ``client.upload_file``: workers that join later get it too.  Each worker unpacks it
once into its own scratch folder and runs pytest there with its own interpreter.  With
``--shared-tree`` nothing but this module and mtests.py is sent: the workers run the tree at
the path it has here (a shared filesystem).  Either way a worker whose Python or msgpack
version differs from this interpreter's is refused (mtests stops with the list of them).

Only this module needs ``distributed`` (``pip install -e '.[cluster]'``); mtests.py imports it
only under ``--scheduler``.
"""

from __future__ import annotations

import hashlib
import io
import os
import platform
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
import zipfile
from pathlib import Path

import mtests

# The runs' interpreter and encoder must be those the client tests with: a run elsewhere
# could pass or fail for another reason than the code under test.
CHECKED_PACKAGES = ("msgpack",)
# Seconds to wait for the first worker to connect before giving up.
WORKER_WAIT = 30.0
# How often (seconds) the progress line asks the scheduler where the runs are.
WHERE_INTERVAL = 1.0
# Workers named on the progress line; the others are counted.
MAX_WORKERS_SHOWN = 8
# Folders never shipped when the tree is not a git checkout.
_SKIPPED_DIRS = ("__pycache__", "build", "dist", "mtests-out", "test-out")
_TREE_PREFIX = "tree/"  # inside the zip; not a package, so the upload does not import it


class ClusterError(Exception):
    """The cluster cannot run the tests; the message says why and what to do."""


# --------------------------------------------------------------------------- versions


def local_versions() -> dict[str, str | None]:
    """Python's version and those of CHECKED_PACKAGES (None: not installed) here."""
    from importlib import metadata

    versions: dict[str, str | None] = {"python": platform.python_version()}
    for name in CHECKED_PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def version_mismatch(worker: str, theirs: dict, ours: dict) -> str | None:
    """Why ``worker`` cannot take runs, or None when its versions are ours."""
    differ = [k for k in ours if theirs.get(k) != ours[k]]
    if not differ:
        return None
    show = lambda v: ", ".join(f"{k} {v.get(k) or 'missing'}" for k in differ)  # noqa: E731
    return f"worker {worker} has {show(theirs)}, this client {show(ours)}"


def refusal(mismatches: list[str]) -> str:
    return ("refused: " + "; ".join(mismatches) + ". Start the workers with the interpreter "
            f"the tests run with here ({sys.executable}, or the same versions on each machine).")


# --------------------------------------------------------------------------- the tree


def tree_files(root: Path) -> list[str]:
    """The files of the working tree to ship, relative to root, sorted.

    In a git checkout: tracked files still present plus untracked ones git does not ignore,
    so a student's uncommitted change is what runs.  Elsewhere (a copied export): every file
    but hidden ones, caches, build output and virtual environments.
    """
    try:
        out = subprocess.run(
            ["git", "-C", str(root), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
            check=True, capture_output=True, text=True,
        ).stdout
        return sorted({p for p in out.split("\0") if p and (root / p).is_file()})
    except (OSError, subprocess.CalledProcessError):
        pass
    files = []
    for top, dirs, names in os.walk(root):
        dirs[:] = [d for d in dirs if not d.startswith(".") and d not in _SKIPPED_DIRS
                   and not d.endswith(".egg-info") and not (Path(top, d) / "pyvenv.cfg").exists()]
        files += [os.path.relpath(Path(top, n), root) for n in names if not n.startswith(".")]
    return sorted(files)


def build_zip(root: Path, with_tree: bool) -> bytes:
    """mtests.py and this module at the top (the workers import them from the zip), and the
    tree under tree/ when it is shipped.  Byte for byte the same for the same files, so
    that its hash names the tree and a worker unpacks a tree once."""
    buf = io.BytesIO()
    code = [(name, root / name) for name in ("mtests.py", "mtests_cluster.py")]
    if with_tree:
        code += [(_TREE_PREFIX + p, root / p) for p in tree_files(root)]
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for name, path in code:
            info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
            info.external_attr = (path.stat().st_mode & 0o777 | 0o100000) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            z.writestr(info, path.read_bytes())
    return buf.getvalue()


# --------------------------------------------------------------------------- on a worker
# Kept across the reload that every upload does: a run started before it can still be killed.
_runs: dict[str, set[int]] = globals().get("_runs", {})  # mtests session token -> run pids
_killed: set[int] = globals().get("_killed", set())
_stopped: set[str] = globals().get("_stopped", set())  # sessions whose runs must not start
_lock: threading.Lock = globals().get("_lock") or threading.Lock()
_unpack_lock: threading.Lock = globals().get("_unpack_lock") or threading.Lock()

# On Linux the run's parent death signal is its worker's death: a worker killed mid-run leaves
# no run behind.  Set in the child before it becomes pytest (preexec_fn is unsafe in a
# threaded worker); a parent already gone by then means the same.
_LAUNCHER = (
    "import ctypes, os, signal, sys\n"
    "ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG\n"
    "os.getppid() == int(sys.argv[1]) or os._exit(137)\n"
    "os.execv(sys.executable, [sys.executable, *sys.argv[2:]])\n"
)


def _worker():
    from distributed import get_worker

    return get_worker()


def _tree_root(spec: dict) -> Path:
    """Where the run's pytest starts: the shared tree, or this worker's copy of the upload."""
    if spec["shared_root"]:
        root = Path(spec["shared_root"])
        if not (root / "mtests.py").is_file():
            raise ClusterError(f"no {root / 'mtests.py'} on worker {_worker().address}: "
                               "it does not share this filesystem (run without --shared-tree)")
        return root
    local = Path(_worker().local_directory)
    root = local / f"mtests-tree-{spec['tree']}"
    with _unpack_lock:
        if not root.is_dir():
            tmp = Path(tempfile.mkdtemp(prefix=".unpacking-", dir=local))
            with zipfile.ZipFile(local / spec["zip_name"]) as z:
                for info in z.infolist():
                    if info.filename.startswith(_TREE_PREFIX):
                        target = tmp / info.filename[len(_TREE_PREFIX):]
                        target.parent.mkdir(parents=True, exist_ok=True)
                        target.write_bytes(z.read(info))
                        target.chmod(info.external_attr >> 16 & 0o777)
            tmp.rename(root)
    return root


def run_task(spec: dict) -> dict:
    """One run on this worker; what the client needs to count and keep it."""
    worker = _worker().address
    mismatch = version_mismatch(worker, local_versions(), spec["versions"])
    if mismatch:
        return {"worker": worker, "refused": mismatch}
    try:
        root = _tree_root(spec)
    except ClusterError as e:
        return {"worker": worker, "refused": str(e)}
    rundir = Path(tempfile.mkdtemp(prefix="mtests-run-", dir=_worker().local_directory))
    try:
        return _run(spec, root, rundir, worker)
    finally:
        shutil.rmtree(rundir, ignore_errors=True)


def _run(spec: dict, root: Path, rundir: Path, worker: str) -> dict:
    env = {**os.environ, **spec["variables"], "PYLABS_OUT": str(rundir / "out")}
    cmd = [sys.executable, *spec["args"]]
    if sys.platform.startswith("linux"):
        cmd = [sys.executable, "-c", _LAUNCHER, str(os.getpid()), *spec["args"]]
    timeout = spec["timeout"]
    log = rundir / "run.log"
    with open(log, "wb") as out:
        with _lock:
            if spec["token"] in _stopped:  # a task that began as its session was interrupted
                return {"worker": worker, "refused": None, "returncode": None, "duration": 0.0,
                        "timed_out": False, "interrupted": True, "log": None, "files": {}}
            start = time.monotonic()
            proc = subprocess.Popen(cmd, cwd=root, env=env, stdin=subprocess.DEVNULL, stdout=out,
                                    stderr=subprocess.STDOUT, start_new_session=True)
            _runs.setdefault(spec["token"], set()).add(proc.pid)
        timed_out = False
        try:
            proc.wait(timeout=timeout if timeout > 0 else None)
        except subprocess.TimeoutExpired:
            timed_out = True
            mtests._kill_group(proc.pid)
            proc.wait()
        duration = time.monotonic() - start
        mtests._kill_group(proc.pid)  # whatever the test left behind in its group
        with _lock:
            _runs.get(spec["token"], set()).discard(proc.pid)
            interrupted = proc.pid in _killed
            _killed.discard(proc.pid)
        trailer = (f"killed after the {mtests.format_duration(timeout)} timeout" if timed_out
                   else "interrupted" if interrupted else f"exit status {proc.returncode}")
        out.write(f"\n--- mtests: {spec['nodeid']} iteration {spec['iteration']}: {trailer} "
                  f"({duration:.2f}s) on worker {worker} ({platform.node()}, in {root})\n"
                  f"--- mtests: $ {shlex.join([sys.executable, *spec['args']])}\n".encode())
    passed = proc.returncode == 0 and not timed_out
    keep = not interrupted and (spec["archive"] or not passed)
    files = {}
    if keep and (rundir / "out").is_dir():
        files = {str(p.relative_to(rundir / "out")): p.read_bytes()
                 for p in sorted((rundir / "out").rglob("*")) if p.is_file()}
    return {"worker": worker, "refused": None, "returncode": proc.returncode,
            "duration": duration, "timed_out": timed_out, "interrupted": interrupted,
            "log": log.read_bytes() if keep else None, "files": files}


def kill_runs(token: str) -> int:
    """Kill the runs of one mtests session on this worker (it was interrupted)."""
    with _lock:
        _stopped.add(token)
        pids = _runs.pop(token, set())
        _killed.update(pids)
    for pid in pids:
        mtests._kill_group(pid)
    return len(pids)


# --------------------------------------------------------------------------- the client


class ClusterRunner(mtests.Runner):
    """mtests' Runner whose runs are Dask tasks: its threads each wait for one run's result,
    so the table, FAIL lines, seeds and Ctrl-C work as they do with local runs."""

    def __init__(self, client, address: str, shared: bool, in_flight: int | None,
                 *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.client = client
        self.address = address
        self.token = f"mtests-{uuid.uuid4().hex[:12]}"
        self.versions = local_versions()
        self.futures: dict[str, object] = {}  # key -> future of the runs handed out
        self.done_by: dict[str, int] = {}  # worker -> runs it finished
        nthreads = client.nthreads()  # worker -> threads, of every worker
        self.threads = sum(nthreads.values())
        # Twice the cluster's threads by default: each thread has its next run queued, and a
        # worker that joins later finds runs waiting.
        self.workers = in_flight or max(2, 2 * self.threads)
        self.plugin = None
        self.zip_name = ""
        self.tree = ""
        self.shared_root = str(mtests.ROOT) if shared else None
        self._where = (-WHERE_INTERVAL, "", 0)  # polled at, per-worker text, runs running
        self._seen_workers: set[str] = set(nthreads)

    # --- connection and upload

    @classmethod
    def connect(cls, address: str, shared: bool, in_flight: int | None, *args, **kwargs):
        try:
            from distributed import Client
        except ImportError:
            raise ClusterError("--scheduler needs Dask's distributed: pip install -e '.[cluster]' "
                               "(make install has it)") from None
        try:
            client = Client(address, timeout="10s", set_as_default=False)
        except (OSError, TimeoutError, ValueError) as e:
            raise ClusterError(f"cannot reach the Dask scheduler at {address}: {e}") from None
        try:
            try:
                client.wait_for_workers(1, timeout=WORKER_WAIT)
            except TimeoutError:
                raise ClusterError(f"the scheduler at {address} has no worker after "
                                   f"{WORKER_WAIT:g}s: start some (dask worker {address})") from None
            check_workers(client)
            runner = cls(client, address, shared, in_flight, *args, **kwargs)
            runner._upload()
            return runner
        except BaseException:
            client.close()
            raise

    def _upload(self) -> None:
        """Send the zip as client.upload_file does (to the scheduler, which unpickles the
        tasks, and to every worker, present or to come), under a name of our own so that
        close() can take it back."""
        from distributed.diagnostics.plugin import UploadFile

        if not self.shared_root:
            shipped = set(tree_files(mtests.ROOT))
            outside = sorted({c.nodeid.split("::")[0] for c in self.cases} - shipped)
            if outside:
                raise ClusterError(f"{', '.join(outside)}: not in the tree shipped from "
                                   f"{mtests.ROOT} (ignored by git, or outside it)")
        data = build_zip(mtests.ROOT, with_tree=not self.shared_root)
        self.tree = hashlib.sha256(data).hexdigest()[:16]
        self.zip_name = f"mtests-tree-{self.tree}.zip"
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp, self.zip_name)
            path.write_bytes(data)
            plugins = [UploadFile(str(path))]  # each reads the file now
            try:
                from distributed.diagnostics.plugin import SchedulerUploadFile
            except ImportError:  # older: the scheduler did not unpickle tasks
                pass
            else:
                plugins.append(SchedulerUploadFile(str(path)))
        self.plugin = f"{self.zip_name}-{self.token}"
        for plugin in plugins:
            self.client.register_plugin(plugin, name=self.plugin)

    def close(self) -> None:
        if self.plugin:
            for unregister in (self.client.unregister_worker_plugin,
                               self.client.unregister_scheduler_plugin):
                try:
                    unregister(self.plugin)
                except Exception:  # gone with the scheduler, or never registered
                    pass
        self.client.close()

    # --- the runs

    def where(self) -> str:
        n = len(self._seen_workers)
        return (f"{n} Dask worker{'s' * (n != 1)} ({self.threads} thread{'s' * (self.threads != 1)}) "
                f"at {self.address}, {self.workers} runs handed out at once")

    def _spec(self, case: mtests.TestCase, iteration: int, seed: int | None) -> dict:
        return {
            "token": self.token, "nodeid": case.nodeid, "iteration": iteration,
            "args": self._command(case, seed)[1:],  # the worker's own interpreter runs them
            "variables": self.run_variables(iteration), "timeout": self.timeout,
            "archive": self.archive, "versions": self.versions, "tree": self.tree,
            "zip_name": self.zip_name, "shared_root": self.shared_root,
        }

    def _run_one(self, case: mtests.TestCase, iteration: int) -> mtests.RunResult | None:
        from distributed import KilledWorker

        seed = self.sim.run_seed() if self.sim else None
        key = f"{self.token}-{case.label}-{iteration}"
        with self.lock:
            if self.stopping:
                return None
            # Earlier runs first, as the local queue does (iteration-major order).
            future = self.client.submit(run_task, self._spec(case, iteration, seed), key=key,
                                        pure=False, priority=-len(self.futures))
            self.futures[key] = future
        try:
            r = future.result()
        except KilledWorker as e:  # the run took down one worker after another
            r = {"worker": "?", "refused": None, "returncode": None, "duration": 0.0,
                 "timed_out": False, "interrupted": False, "files": {},
                 "log": f"--- mtests: {case.nodeid} iteration {iteration}: {e}\n".encode()}
        except Exception as e:  # cancelled: by stop(), or by a lost scheduler, which ends it all
            with self.lock:
                if not self.stopping:
                    self.stopping = True
                    self.messages.append(f"mtests: {case.label} iteration {iteration} lost "
                                         f"({e!r}): stopping")
            return None
        if r["refused"]:
            with self.lock:
                self.messages.append(f"mtests: {refusal([r['refused']])}")
            self.stop()
            return None
        result = mtests.RunResult(case, iteration, r["returncode"], r["duration"], r["timed_out"],
                                  r["interrupted"], seed=seed)
        if r["log"] is not None and not r["interrupted"]:
            result.log = self.outdir / mtests.log_name(case.label, iteration)
            result.log.write_bytes(r["log"])
            for name, data in r["files"].items():
                (self.outdir / name).parent.mkdir(parents=True, exist_ok=True)
                (self.outdir / name).write_bytes(data)
        with self.lock:
            self.done_by[r["worker"]] = self.done_by.get(r["worker"], 0) + 1
        return result

    def stop(self) -> None:
        super().stop()
        with self.lock:
            futures = list(self.futures.values())
        self.client.cancel(futures)
        try:
            self.client.run(kill_runs, self.token, on_error="ignore")
        except Exception:  # the workers are out of reach: their runs end at --timeout
            pass

    def run(self, progress: mtests.Progress) -> None:
        try:
            super().run(ClusterProgress(progress, self.per_worker))
        finally:
            self.close()

    def in_flight(self) -> int:
        self._poll()
        return self._where[2]

    def per_worker(self) -> str:
        self._poll()
        return self._where[1]

    def _poll(self) -> None:
        """Runs done and running per worker, from the scheduler at most every WHERE_INTERVAL
        (for the progress line); notes workers that left."""
        now = time.monotonic()
        if now - self._where[0] < WHERE_INTERVAL:
            return
        try:
            processing = self.client.processing()
            threads = self.client.nthreads()
        except Exception:  # the scheduler is out of reach: the last line stands
            return
        # A worker is sent a little more than it has threads for (Dask's worker-saturation).
        running = {w: min(threads.get(w, 1), sum(str(k).startswith(self.token) for k in keys))
                   for w, keys in processing.items()}
        with self.lock:
            for gone in sorted(self._seen_workers - set(running)):
                self.messages.append(f"mtests: worker {gone} left; Dask hands its runs to the others")
            self._seen_workers = set(running)
            done = dict(self.done_by)
        shown = sorted(set(done) | set(running))
        text = "; ".join(f"{w.split('://')[-1]} {done.get(w, 0)} done, {running.get(w, 0)} running"
                         for w in shown[:MAX_WORKERS_SHOWN])
        if len(shown) > MAX_WORKERS_SHOWN:
            text += f"; {len(shown) - MAX_WORKERS_SHOWN} more workers"
        self._where = (now, text or "no worker", sum(running.values()))


class ClusterProgress(mtests.Progress):
    """mtests' progress line followed by the runs of each worker."""

    def __init__(self, progress: mtests.Progress, detail) -> None:
        super().__init__(progress.stream, progress.tty, progress.interval)
        self.start = progress.start
        self.detail = detail

    def _text(self, *counts) -> str:
        return f"{super()._text(*counts)} | {self.detail()}"


def check_workers(client) -> None:
    """Refuse the cluster when a worker's Python or checked package versions are not ours.

    Asked with the standard library's own functions, which any worker can unpickle: one of
    this module would fail on a worker of another Python before it could say why.
    """
    from importlib import metadata

    theirs: dict[str, dict] = {}
    for w, v in client.run(platform.python_version, on_error="return").items():
        theirs.setdefault(w, {})["python"] = v if isinstance(v, str) else None
    for name in CHECKED_PACKAGES:
        for w, v in client.run(metadata.version, name, on_error="return").items():
            theirs.setdefault(w, {})[name] = v if isinstance(v, str) else None
    ours = local_versions()
    mismatches = [m for w, v in sorted(theirs.items()) if (m := version_mismatch(w, v, ours))]
    if mismatches:
        raise ClusterError(refusal(mismatches))
