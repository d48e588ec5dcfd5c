"""Tests of tools/skeleton.py, the export of the student skeleton.

The marker transform is tested on small texts; the export itself is tested by
exporting this checkout once and checking, in subprocesses run inside the
export (so that they import its raft and kvraft, not our installed solution),
that the skeleton imports, that its tests are collected, and that the first 2A
test fails the way it does on the lab's starting code.
"""

import importlib.util
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

# Built from pieces so that this file's own lines are not marker lines.
BEGIN = "# BEGIN " + "SOLUTION"
END = "# END " + "SOLUTION"

# ---- the marker transform ----------------------------------------------------


def test_solution_block_removed():
    text = f"a = 1\n{BEGIN}\nb = 2\n{END}\nc = 3\n"
    assert sk.transform(text) == "a = 1\nc = 3\n"


def test_indented_block_removed():
    text = f"def f():\n    x = 1\n    {BEGIN}\n    y = 2\n        {END}\n    return x\n"
    assert sk.transform(text) == "def f():\n    x = 1\n    return x\n"


def test_skeleton_lines_uncommented_keeping_indentation():
    text = (
        "def f():\n"
        "    #> return 0\n"
        "    #>\n"
        "    #>     # deeper\n"
        f"    {BEGIN}\n"
        "    return 1\n"
        f"    {END}\n"
    )
    assert sk.transform(text) == "def f():\n    return 0\n\n        # deeper\n"


def test_text_without_markers_unchanged():
    text = "x = 1\n\n\n\n\ny = 2  # not #> a marker\n"
    assert sk.transform(text) == text


def test_blank_lines_squeezed_after_a_removal():
    text = f"x = 1\n\n\n{BEGIN}\nz = 0\n{END}\n\n\ny = 2\n"
    assert sk.transform(text) == "x = 1\n\n\ny = 2\n"


def test_crlf_kept():
    text = f"a = 1\r\n{BEGIN}\r\nb = 2\r\n{END}\r\n#> c = 3\r\n"
    assert sk.transform(text) == "a = 1\r\nc = 3\r\n"


def test_solution_code_is_unchanged_by_markers():
    # The markers are comments: Python sees the same program.
    import ast

    text = f"def f():\n    #> return 0\n    {BEGIN}\n    return 1\n    {END}\n"
    assert ast.dump(ast.parse(text)) == ast.dump(ast.parse("def f():\n    return 1\n"))


@pytest.mark.parametrize(
    "text, lineno, words",
    [
        (f"a = 1\n{BEGIN}\nb = 2\n", 2, "never closed"),
        (f"a = 1\n{END}\n", 2, "without a BEGIN"),
        (f"{BEGIN}\n{BEGIN}\n{END}\n", 2, "inside the block opened at line 1"),
        (f"{BEGIN}\n#> x = 1\n{END}\n", 2, "inside the solution block opened at line 1"),
        ("x = 1\n    #>return x\n", 2, "needs a space"),
    ],
)
def test_marker_errors_name_file_and_line(text, lineno, words):
    with pytest.raises(sk.MarkerError) as e:
        sk.transform(text, "pkg/mod.py")
    assert str(e.value).startswith(f"pkg/mod.py:{lineno}: ")
    assert words in str(e.value)


def test_skeleton_must_compile_and_carry_no_marker_text():
    with pytest.raises(sk.MarkerError, match=r"^m\.py:2: the skeleton does not compile"):
        sk.check_skeleton_source("def f():\nreturn 1\n", "m.py")
    with pytest.raises(sk.MarkerError, match=r"^m\.py:2: marker text left"):
        sk.check_skeleton_source("x = 1\n#BEGIN SOLUTION\n", "m.py")


# ---- export errors -------------------------------------------------------------


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


def test_marker_error_leaves_dest_untouched(tmp_path):
    files = {rel: "x = 1\n" for rel in sk.SKELETON_FILES}
    files["kvraft/server.py"] = f"x = 1\n{BEGIN}\ny = 2\n"
    src = _git_project(tmp_path / "src", files)
    dest = tmp_path / "dest"
    with pytest.raises(sk.MarkerError, match=r"^kvraft/server\.py:2: BEGIN SOLUTION never closed"):
        sk.export(dest, src)
    assert not dest.exists()
    # The command line reports the same, with status 1.
    res = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "skeleton.py"), "--src", str(src), str(dest)],
        capture_output=True,
        text=True,
    )
    assert res.returncode == 1
    assert "kvraft/server.py:2: BEGIN SOLUTION never closed" in res.stderr


def test_markers_outside_the_skeleton_files_are_refused(tmp_path):
    files = {rel: "x = 1\n" for rel in sk.SKELETON_FILES}
    files["raft/util.py"] = f"x = 1\n{END}\n"
    src = _git_project(tmp_path / "src", files)
    with pytest.raises(sk.MarkerError, match=r"^raft/util\.py:2: marker in a file that is not in SKELETON_FILES"):
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
    return subprocess.run(
        [sys.executable, *args], cwd=dest, env=env, capture_output=True, text=True, timeout=timeout
    )


def _tracked():
    out = subprocess.run(["git", "-C", str(ROOT), "ls-files", "-z"], capture_output=True, text=True, check=True)
    return sorted(p for p in out.stdout.split("\0") if p and (ROOT / p).exists())


def test_export_copies_the_project_and_reduces_only_the_skeleton_files(dest):
    exported = sorted(str(p.relative_to(dest)) for p in dest.rglob("*") if p.is_file() or p.is_symlink())
    expected = [p for p in _tracked() if not p.startswith("tests/skeleton/") and p != "tests/race/test_planted.py"]
    assert exported == expected
    for rel in expected:
        same = (ROOT / rel).read_bytes() == (dest / rel).read_bytes()
        assert same == (rel not in sk.SKELETON_FILES), rel


def test_no_solution_leaks(dest):
    for rel in sk.SKELETON_FILES:
        text = (dest / rel).read_text()
        assert "SOLUTION" not in text, rel
        assert not re.search(r"(?m)^\s*#>", text), rel
    rf = (dest / "raft/raft.py").read_text()
    for name in ("AppendEntries", "InstallSnapshot", "replicator", "applier", "_startElection", "self.currentTerm", "votedFor"):
        assert name not in rf, name
    kv = "".join((dest / f"kvraft/{f}.py").read_text() for f in ("client", "server", "common"))
    for name in ("ClientId", "SeqNum", "ErrTimeout", "_Waiter", "_submit", "lastSeq"):
        assert name not in kv, name
    assert "tests/skeleton" not in {str(p.parent.relative_to(dest)) for p in dest.rglob("*.py")}


def test_skeleton_has_the_lab_shape(dest):
    rf = (dest / "raft/raft.py").read_text()
    for snippet in (
        "def GetState(self):",
        "# Your code here (2A).",
        "return term, isleader",
        "def persist(self):",
        "def readPersist(self, data):",
        "def Snapshot(self, index, snapshot):",
        "class RequestVoteArgs:",
        "# Your data here (2A, 2B).",
        "class RequestVoteReply:",
        "def RequestVote(self, args, reply):",
        "# Your code here (2A, 2B).",
        "def sendRequestVote(self, server, args, reply):",
        "index = -1",
        "return index, term, isLeader",
        "# Your code here (2B).",
        "def ticker(self):",
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
        "self.applyCh = raft.Chan()",
        "self.rf = raft.Make(servers, me, persister, self.applyCh)",
        "self.rf.Kill()",
        "def StartKVServer(servers, me, persister, maxraftstate):",
    ):
        assert snippet in server, snippet


def test_skeleton_imports_from_the_export(dest):
    code = (
        "import raft, kvraft, raft.raft, kvraft.client, kvraft.server, kvraft.common\n"
        "for m in (raft, raft.raft, kvraft.client, kvraft.server, kvraft.common):\n"
        "    print(m.__file__)\n"
        "rf = raft.Raft([None] * 3, 0, None, None)\n"
        "assert rf.GetState() == (0, False), rf.GetState()\n"
        "assert rf.Start('x') == (-1, -1, True)\n"
        "assert not hasattr(raft, 'AppendEntriesArgs')\n"
        "assert kvraft.Clerk([None]).Get('k') == ''\n"
    )
    res = _run_in(dest, "-c", code)
    assert res.returncode == 0, res.stdout + res.stderr
    files = res.stdout.split()
    assert len(files) == 5
    for f in files:
        assert Path(f).resolve().is_relative_to(dest.resolve()), f


def test_skeleton_tests_are_collected(dest):
    res = _run_in(dest, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider", "tests/raft", "tests/kvraft")
    assert res.returncode == 0, res.stdout + res.stderr
    ids = [line for line in res.stdout.splitlines() if "::" in line]
    assert sum(i.startswith("tests/raft/") for i in ids) == 28, res.stdout
    assert sum(i.startswith("tests/kvraft/") for i in ids) == 23, res.stdout


def test_skeleton_fails_initial_election_by_assertion(dest):
    res = _run_in(
        dest,
        "-m",
        "pytest",
        "-q",
        "-p",
        "no:cacheprovider",
        "tests/raft/test_raft.py::TestInitialElection2A",
    )
    out = res.stdout + res.stderr
    assert res.returncode == 1, out  # 1: tests failed (not 2..4: interrupted, internal or usage error)
    assert "expected one leader, got none" in out, out
    assert re.search(r"\b1 failed\b", out), out
    assert not re.search(r"\b\d+ errors?\b|ImportError|ModuleNotFoundError|AttributeError|NameError|TypeError", out), out
    assert "threads still running" not in out, out
