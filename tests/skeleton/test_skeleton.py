"""Tests of tools/skeleton.py, the export of the student skeleton.

The overlay is tested on small git projects; the export of this checkout is
tested in subprocesses run inside the export (so that they import its raft and
kvraft, not our installed solution): the skeleton compiles and imports, has the
solution's public names and signatures, its tests are collected, and lab tests
fail on it quickly, by assertion, without hanging or leaving threads behind.
"""

import importlib
import importlib.util
import inspect
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _load_exporter():
    spec = importlib.util.spec_from_file_location("skeleton_exporter", ROOT / "tools" / "skeleton.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


sk = _load_exporter()

# ---- the overlay, on small projects ----------------------------------------------


def _git_project(path, files):
    """A minimal git checkout holding files (tracked, not committed)."""
    path.mkdir()
    for rel, text in files.items():
        f = path / rel
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_text(text)
    subprocess.run(["git", "init", "-q", str(path)], check=True)
    subprocess.run(["git", "-C", str(path), "add", "."], check=True)
    return path


def _tree(path):
    return {str(p.relative_to(path)): p.read_text() for p in sorted(path.rglob("*")) if p.is_file()}


def test_skeleton_files_replace_their_twins_and_others_are_copied(tmp_path):
    src = _git_project(
        tmp_path / "src",
        {
            "lab/a.py": "solution = 1\n",
            "lab/util.py": "helper = 1\n",
            "skeleton/lab/a.py": "# Your code here.\n",
            # A new lab needs no change to the exporter, only its skeleton folder.
            "newlab/b.py": "solution = 2\n",
            "skeleton/newlab/b.py": "pass\n",
            "tests/skeleton/test_x.py": "x = 1\n",
            "README.md": "read me\n",
            # A top-level skeleton file replaces the project's: the students' README.
            "skeleton/README.md": "student read me\n",
        },
    )
    dest = tmp_path / "dest"
    exported = sk.export(dest, src)
    expected = {
        "README.md": "student read me\n",
        "lab/a.py": "# Your code here.\n",
        "lab/util.py": "helper = 1\n",
        "newlab/b.py": "pass\n",
    }
    assert _tree(dest) == expected
    assert sorted(exported) == sorted(expected)


def test_skeleton_that_does_not_compile_is_refused_and_dest_untouched(tmp_path):
    src = _git_project(tmp_path / "src", {"lab/a.py": "x = 1\n", "skeleton/lab/a.py": "def f():\nreturn 1\n"})
    dest = tmp_path / "dest"
    with pytest.raises(sk.SkeletonError, match=r"^skeleton/lab/a\.py:2: the skeleton does not compile"):
        sk.export(dest, src)
    assert not dest.exists()
    # The command line reports the same, with status 1.
    res = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "skeleton.py"), "--src", str(src), str(dest)],
        capture_output=True,
        text=True,
    )
    assert res.returncode == 1
    assert "skeleton/lab/a.py:2: the skeleton does not compile" in res.stderr
    assert not dest.exists()


def test_project_without_skeleton_folder_is_refused(tmp_path):
    src = _git_project(tmp_path / "src", {"lab/a.py": "x = 1\n"})
    with pytest.raises(SystemExit, match="no tracked files under skeleton/"):
        sk.export(tmp_path / "dest", src)


def test_refuses_non_empty_dest(tmp_path):
    (tmp_path / "keep.txt").write_text("mine\n")
    with pytest.raises(SystemExit, match="not empty"):
        sk.export(tmp_path)
    assert os.listdir(tmp_path) == ["keep.txt"]


# ---- the exported skeleton of this checkout ----------------------------------------


@pytest.fixture(scope="module")
def dest(tmp_path_factory):
    d = tmp_path_factory.mktemp("skeleton") / "pylabs"
    res = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "skeleton.py"), str(d)], capture_output=True, text=True
    )
    assert res.returncode == 0, res.stderr
    return d


def _run_in(dest, *args, timeout=120):
    """Run python with args inside the export, importing only the export's packages
    (the solution is installed in editable mode, so PYTHONPATH must put dest first)."""
    env = dict(os.environ, PYTHONPATH=str(dest), PYTHONDONTWRITEBYTECODE="1")
    env.pop("VERBOSE", None)
    return subprocess.run(
        [sys.executable, *args], cwd=dest, env=env, capture_output=True, text=True, timeout=timeout
    )


def _tracked():
    out = subprocess.run(["git", "-C", str(ROOT), "ls-files", "-z"], capture_output=True, text=True, check=True)
    return sorted(p for p in out.stdout.split("\0") if p and (ROOT / p).exists())


def _skeleton_twins():
    return {p[len("skeleton/"):]: p for p in _tracked() if p.startswith("skeleton/")}


def test_export_is_the_project_with_the_skeleton_laid_over(dest):
    twins = _skeleton_twins()
    assert {"raft/raft.py", "raft/__init__.py", "kvraft/client.py", "kvraft/server.py", "kvraft/common.py"} <= set(twins)
    exported = sorted(str(p.relative_to(dest)) for p in dest.rglob("*") if p.is_file() or p.is_symlink())
    expected = sorted(
        {p for p in _tracked() if not p.startswith(sk.EXCLUDED)} | set(twins)
    )
    assert exported == expected
    for rel in expected:
        assert (dest / rel).read_bytes() == (ROOT / twins.get(rel, rel)).read_bytes(), rel


def test_no_solution_leaks(dest):
    rf = (dest / "raft/raft.py").read_text()
    for name in ("AppendEntries", "InstallSnapshot", "replicator", "applier", "_startElection", "self.currentTerm", "votedFor", "class Log"):
        assert name not in rf, name
    kv = "".join((dest / f"kvraft/{f}.py").read_text() for f in ("client", "server", "common"))
    for name in ("ClientId", "SeqNum", "ErrTimeout", "_Waiter", "_submit", "lastSeq"):
        assert name not in kv, name


def test_solution_files_carry_no_skeleton_markers():
    for rel in _tracked():
        if rel.endswith(".py") and not rel.startswith("tests/skeleton/"):
            text = (ROOT / rel).read_text()
            assert not re.search(r"(?m)^\s*# (BEGIN|END) SOLUTION\s*$|^\s*#>", text), rel


def test_skeleton_has_the_lab_shape(dest):
    rf = (dest / "raft/raft.py").read_text()
    # The methods come in the Go skeleton's order.
    order = [
        "def GetState(self):",
        "def persist(self):",
        "def readPersist(self, data):",
        "def Snapshot(self, index: int, snapshot: bytes):",
        "def RequestVote(self, args, reply):",
        "def sendRequestVote(self, server, args, reply):",
        "def Start(self, command):",
        "def Kill(self):",
        "def killed(self):",
        "def ticker(self):",
        "def Make(peers, me, persister, applyCh):",
    ]
    positions = [rf.find(s) for s in order]
    assert -1 not in positions, [s for s, p in zip(order, positions) if p == -1]
    assert positions == sorted(positions)
    for snippet in (
        "# Your code here (2A).",
        "return term, isleader",
        "# Your data here (2A, 2B).",
        "# Your code here (2A, 2B).",
        "return index, term, isLeader",
        "# Your code here (2B).",
        "while not self.killed():",
        "ms = 50 + random.randrange(300)",
        "# Your initialization code here (2A, 2B, 2C).",
        "rf.readPersist(persister.ReadRaftState())",
        "target=rf.ticker",
    ):
        assert snippet in rf, snippet
    client = (dest / "kvraft/client.py").read_text()
    for snippet in ("def nrand():", "def MakeClerk(servers):", 'return ""', "def PutAppend(self, key, value, op):"):
        assert snippet in client, snippet
    server = (dest / "kvraft/server.py").read_text()
    for snippet in (
        "class Op:",
        "kv.applyCh = raft.Chan()",
        "kv.rf = raft.Make(servers, me, persister, kv.applyCh)",
        "self.rf.Kill()",
        "def StartKVServer(servers, me, persister, maxraftstate):",
    ):
        assert snippet in server, snippet


# Public names only the solution has: the skeleton leaves them to the student.
SOLUTION_ONLY = {
    "raft": {"AppendEntriesArgs", "AppendEntriesReply", "InstallSnapshotArgs", "InstallSnapshotReply"},
    "raft.raft": {"AppendEntriesArgs", "AppendEntriesReply", "InstallSnapshotArgs", "InstallSnapshotReply"},
    "kvraft": {"ErrTimeout"},
}
# Dataclasses whose skeleton has only the first of the solution's fields (or none).
STUDENT_EXTENDED = {"RequestVoteArgs", "RequestVoteReply", "Op", "PutAppendArgs", "GetArgs"}
# The packages' names are what the testers and services use; raft.raft's are its __all__.
MODULES = ("raft", "raft.raft", "kvraft")

# Printed by a subprocess inside the export, and computed here for the solution.
_INTERFACE = '''
import dataclasses, importlib, inspect, json, sys

def interface(name):
    m = importlib.import_module(name)
    out = {"__file__": m.__file__}
    names = getattr(m, "__all__", None) or [a for a in vars(m) if not a.startswith("_")]
    for attr in names:
        value = getattr(m, attr)
        if inspect.ismodule(value):
            continue
        if dataclasses.is_dataclass(value):
            out[attr] = {"fields": [f.name for f in dataclasses.fields(value)]}
        elif inspect.isclass(value):
            methods = {
                k: str(inspect.signature(v))
                for k, v in vars(value).items()
                if inspect.isfunction(v) and (not k.startswith("_") or k == "__init__")
            }
            out[attr] = {"class": methods}
        elif callable(value):
            out[attr] = {"function": str(inspect.signature(value))}
        else:  # constants such as OK, Debug
            out[attr] = {"value": repr(value)}
    return out
'''


def _solution_interface():
    ns = {}
    exec(compile(_INTERFACE, "<interface>", "exec"), ns)
    return {name: ns["interface"](name) for name in MODULES}


def test_skeleton_exposes_the_solution_interface(dest):
    code = _INTERFACE + "print(json.dumps({name: interface(name) for name in sys.argv[1:]}))\n"
    res = _run_in(dest, "-c", code, *MODULES)
    assert res.returncode == 0, res.stdout + res.stderr
    skel = json.loads(res.stdout)
    sol = _solution_interface()
    for name in MODULES:
        f = Path(skel[name].pop("__file__")).resolve()
        assert f.is_relative_to(dest.resolve()), f
        sol[name].pop("__file__")
        expected = set(sol[name]) - SOLUTION_ONLY.get(name, set())
        assert set(skel[name]) == expected, (name, set(skel[name]) ^ expected)
        for attr, what in skel[name].items():
            if "fields" in what:
                # The student adds fields to the RPC and Op types; the others are given whole.
                fields = sol[name][attr]["fields"]
                if attr in STUDENT_EXTENDED:
                    assert what["fields"] == fields[: len(what["fields"])], (name, attr, what, fields)
                else:
                    assert what["fields"] == fields, (name, attr, what, fields)
            elif "class" in what:
                # Every method the skeleton shows the student, the solution has, with the same signature.
                solution_methods = sol[name][attr]["class"]
                for meth, sig in what["class"].items():
                    assert solution_methods.get(meth) == sig, (name, attr, meth, sig, solution_methods.get(meth))
            else:
                assert what == sol[name][attr], (name, attr, what, sol[name][attr])


def test_skeleton_runs_as_the_lab_starting_code(dest):
    code = (
        "import raft, kvraft\n"
        "rf = raft.Raft([None] * 3, 0, None, None)\n"
        "assert rf.GetState() == (0, False), rf.GetState()\n"
        "assert rf.Start('x') == (-1, -1, True)\n"
        "assert kvraft.Clerk([None]).Get('k') == ''\n"
    )
    res = _run_in(dest, "-c", code)
    assert res.returncode == 0, res.stdout + res.stderr


def test_skeleton_tests_are_collected(dest):
    res = _run_in(dest, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider", "tests/raft", "tests/kvraft")
    assert res.returncode == 0, res.stdout + res.stderr
    ids = [line for line in res.stdout.splitlines() if "::" in line]
    assert sum(i.startswith("tests/raft/test_raft.py::") for i in ids) == 28, res.stdout
    assert sum(i.startswith("tests/kvraft/") for i in ids) == 23, res.stdout


# "Quickly" means by the test's own assertion, not at the whole-test limit (180 s): no
# real-time bound is asserted, since a loaded machine stretches every run.
LIMIT = "did not end within the whole-test limit"


# Ids without the lab tests' names, so that `-k 2A` and mtests.py 2A do not pick these.
@pytest.mark.parametrize(
    "test, message",
    [
        # checkOneLeader gives up after its Go loop of 10 x 0.45-0.55 s.
        ("tests/raft/test_raft.py::TestInitialElection2A", "expected one leader, got none"),
        # The skeleton clerk's Get returns "" at once.
        ("tests/kvraft/test_kvraft.py::TestBasic3A", "get wrong value, key 0"),
    ],
    ids=["raft-election", "kvraft-basic"],
)
def test_lab_tests_fail_on_the_skeleton_quickly_by_assertion(dest, test, message):
    res = _run_in(dest, "-m", "pytest", "-q", "-p", "no:cacheprovider", test, timeout=600)
    out = res.stdout + res.stderr
    assert res.returncode == 1, out  # 1: tests failed (not 2..4: interrupted, internal or usage error)
    assert message in out, out
    assert re.search(r"\b1 failed\b", out), out
    assert not re.search(r"\b\d+ errors?\b|ImportError|ModuleNotFoundError|AttributeError|NameError|TypeError", out), out
    assert "still running 5 s after cleanup" not in out, out
    assert LIMIT not in out, out


# ---- the students' README and first run ---------------------------------------------


def test_export_has_the_student_readme(dest):
    readme = (dest / "README.md").read_text()
    assert readme == (ROOT / "skeleton" / "README.md").read_text()
    for section in (
        "## The handouts",
        "## What you write, part by part",
        "## Running the tests",
        "## Reading a failure",
        "## Debugging: the debug log",
    ):
        assert section in readme, section
    # Every part's row names the files to write, its make target and its time.
    for part, files in {
        "2A": "raft/raft.py", "2B": "raft/raft.py", "2C": "raft/raft.py", "2D": "raft/raft.py",
        "3A": "kvraft/server.py", "3B": "kvraft/server.py",
        "4A": "shardctrler/server.py", "4B": "shardkv/server.py",
    }.items():
        row = re.search(rf"(?m)^\| {part} \|.*$", readme)
        assert row and files in row.group() and f"`test-{part}`" in row.group(), part
        assert re.search(r"\| ~\d+(\.\d+)? (s|min) \|$", row.group()), row.group()
    for lab in ("lab-raft.html", "lab-kvraft.html", "lab-shard.html"):
        assert f"http://nil.csail.mit.edu/6.5840/2023/labs/{lab}" in readme, lab
    for words in (
        ".venv/bin/python mtests.py", "dslogs.py", "VERBOSE=1", "-k TestBackup2B",
        "Leftover threads", "does not check `killed()`", "Exception in thread",
        "whole-test limit", "--race", "expected one leader, got none",
    ):
        assert words in readme, words
    # Nothing of the solution's README: its claim, its stress tables, the exporter's tests.
    for words in ("a solution for", "Stress tables", "mtests.py --workers 8", "┏", "tests/skeleton", "make skeleton"):
        assert words not in readme, words


def test_make_test_of_the_first_part_in_the_export_fails_quickly(dest, tmp_path):
    """A student's first command, `make test-2A`: the export's own Makefile, with this
    interpreter in place of the export's venv (a stamp newer than setup.cfg stands in for
    its installation).  The name has no part in it, or `mtests.py 2A` would run it."""
    stamp = tmp_path / "installed"
    stamp.touch()
    env = dict(os.environ, PYTHONPATH=str(dest), PYTHONDONTWRITEBYTECODE="1", PYTEST_ADDOPTS="-p no:cacheprovider")
    env.pop("VERBOSE", None)
    res = subprocess.run(
        ["make", "test-2A", f"VPY={sys.executable}", f"STAMP={stamp}"],
        cwd=dest, env=env, capture_output=True, text=True, timeout=600,
    )
    out = res.stdout + res.stderr
    assert res.returncode != 0, out
    assert "expected one leader, got none" in out, out
    assert re.search(r"\b3 failed\b", out), out
    assert "Test (2A): initial election ..." in out, out
    assert "still running 5 s after cleanup" not in out, out
    assert LIMIT not in out, out
