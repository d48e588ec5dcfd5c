"""Planted bugs: a Raft AppendEntries handler run without its lock, and ShardKV's map
of ends filled without it.

CPython switches threads every few milliseconds, so such a handler passes the
lab tests hundreds of times in a row; under --race the suite must fail at
once, naming the field and the two threads.  The test copies the project into
a temporary directory, removes the `with self.mu:` of the copy's
Raft.AppendEntries, and runs a real lab test on the copy, under --race (in real
time and under --sim), in a subprocess; the unmodified copy must pass the same
run.  The shardkv plant runs as make test's last pass does, under --sim --race.
"""

import ast
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LAB_TEST = "tests/raft/test_raft.py::TestBasicAgree2B"
RUN_LIMIT = 120  # seconds: the harness's real-time limit on one test

# Go lets a goroutine Signal a Cond without holding its lock; Python raises, so
# in the copy a notify() made without the lock takes it for the signal alone.
GO_SIGNAL_PLUGIN = '''\
import threading

_notify = threading.Condition.notify


def notify(self, n=1):
    if self._is_owned():
        return _notify(self, n)
    with self:
        return _notify(self, n)


threading.Condition.notify = notify
'''


def copy_project(dest):
    shutil.copytree(
        ROOT,
        dest,
        ignore=shutil.ignore_patterns(".git", ".venv", "mtests-out", "__pycache__", "*.egg-info"),
    )
    (dest / "go_signal.py").write_text(GO_SIGNAL_PLUGIN)


def plant_unlocked_append_entries(raft_py):
    """Replace the `with self.mu:` in Raft.AppendEntries by `if True:`."""
    src = raft_py.read_text()
    tree = ast.parse(src)
    handler = next(
        (
            fn
            for cls in tree.body
            if isinstance(cls, ast.ClassDef) and cls.name == "Raft"
            for fn in cls.body
            if isinstance(fn, ast.FunctionDef) and fn.name == "AppendEntries"
        ),
        None,
    )
    if handler is None:
        pytest.fail(f"cannot plant the bug: no Raft.AppendEntries in {raft_py}")
    with_mu = next(
        (
            node
            for node in ast.walk(handler)
            if isinstance(node, ast.With)
            and any(ast.unparse(item.context_expr) == "self.mu" for item in node.items)
        ),
        None,
    )
    if with_mu is None:
        pytest.fail("cannot plant the bug: Raft.AppendEntries has no `with self.mu:`")
    lines = src.splitlines(keepends=True)
    i = with_mu.lineno - 1
    planted = lines[i].replace("with self.mu:", "if True:  # planted: no lock", 1)
    assert planted != lines[i], lines[i]
    lines[i] = planted
    raft_py.write_text("".join(lines))


def run_lab_test(copy, extra, test=LAB_TEST):
    env = dict(os.environ, PYTHONPATH=str(copy))
    env.pop("VERBOSE", None)
    cmd = [sys.executable, "-m", "pytest", "-q", "-s", "-p", "go_signal", "--race", *extra, test]
    proc = subprocess.run(
        cmd, cwd=copy, env=env, capture_output=True, text=True, timeout=RUN_LIMIT
    )
    return proc.returncode, proc.stdout + proc.stderr


# The lockset rule needs no real interleaving: under --sim the same bug fails the same way.
@pytest.mark.realtime
@pytest.mark.parametrize("extra", [[], ["--sim", "--sim-seed", "1"]], ids=["realtime", "sim"])
def test_unlocked_append_entries_fails_under_race(tmp_path, extra):
    copy = tmp_path / "project"
    copy_project(copy)

    code, out = run_lab_test(copy, extra)
    assert code == 0, f"the unmodified copy must pass {LAB_TEST} under --race:\n{out}"
    assert "DATA RACE" not in out, out

    plant_unlocked_append_entries(copy / "raft" / "raft.py")
    code, out = run_lab_test(copy, extra)
    assert code != 0, f"the planted bug went unnoticed:\n{out}"
    assert "race detector:" in out and "data race(s)" in out, out
    # The field, the handler's unlocked access in the copy's AppendEntries, and a
    # second thread that holds Raft.mu.
    m = re.search(
        r"field Raft\.(\w+) of Raft object.*\n"
        r"  (?:Read|Write) of Raft\.\1 by thread '([^']+)' \(no locks held\):\n"
        r"(?:      .*\n)*?      File \"([^\"]+)\", line \d+, in Raft\.AppendEntries\n"
        r"(?:(?!WARNING).*\n)*?  Previous (?:read|write) of Raft\.\1 by thread '([^']+)' \(locks held: Raft\.mu\)",
        out,
    )
    assert m, f"no report of an unlocked access in AppendEntries against a locked one:\n{out}"
    field, handler_thread, path, other_thread = m.groups()
    assert Path(path).resolve() == (copy / "raft" / "raft.py").resolve()
    assert handler_thread.startswith("labrpc-handler")
    assert other_thread != handler_thread


# The race make test's --sim --race pass must catch: ShardKV's map of ends, which its gc and
# migration threads both fill (12 of the 15 Lab 4 tests reported it before it took the lock).
SHARDKV_TEST = "tests/shardkv/test_shardkv.py::TestJoinLeave"
LOCKED_END = """\
        with self.mu:
            end = self.ends.get(name)
            if end is None:
                end = self.ends[name] = self.make_end(name)
            return end
"""
UNLOCKED_END = """\
        end = self.ends.get(name)
        if end is None:
            end = self.ends[name] = self.make_end(name)
        return end
"""


@pytest.mark.realtime
def test_unlocked_shardkv_ends_fails_under_sim_and_race(tmp_path):
    copy = tmp_path / "project"
    copy_project(copy)
    server = copy / "shardkv" / "server.py"
    src = server.read_text()
    if LOCKED_END not in src:
        pytest.fail(f"cannot plant the bug: no locked ShardKV._end in {server}")
    server.write_text(src.replace(LOCKED_END, UNLOCKED_END))
    code, out = run_lab_test(copy, ["--sim", "--sim-seed", "1"], SHARDKV_TEST)
    assert code != 0, f"the planted bug went unnoticed:\n{out}"
    assert "field ShardKV.ends of ShardKV object" in out, out

