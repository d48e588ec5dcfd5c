"""Export the student skeleton: the whole project with the solution taken out.

    python tools/skeleton.py DEST        (or: make skeleton DEST=dir)

Every git-tracked file is copied to DEST unchanged, except that each file under
skeleton/<pkg>/ takes the place of <pkg>/ of the same name: skeleton/raft/raft.py
becomes DEST/raft/raft.py, and so on; skeleton/README.md, the students' README,
becomes DEST/README.md in place of the solution's.  The skeleton files are the lab's
starting code, twins of the Go skeleton files; a new lab adds its package's
folder under skeleton/ and nothing here changes.  Files of <pkg>/ with no
skeleton twin (raft/util.py, say) are exported as they are.

Every skeleton Python file must compile (an error names the file and line, and
leaves DEST untouched).  DEST must be empty or absent.  Files not in git (the
venv, caches, test output) are not exported, nor is EXCLUDED: the skeleton
folder itself, once laid over, this exporter's tests, which would fail once a
student's code passes the lab tests, and the tests of the solution's internals
(the Raft log type; the race detector's and the lock watchdog's planted bugs, which
edit passages of our raft.py; the extra tests' planted bugs, which edit our
raft/raft.py), and the solution's rsm package, which no 2023 skeleton file imports.
"""

import argparse
import os
import shutil
import subprocess
import sys

SKELETON_DIR = "skeleton/"

# Tracked paths (files, or folders ending in "/") left out of the export: the skeleton
# folder (laid over already), and tests of this solution's own internals (the
# bad-input tests, with tests/bad_input.py that serves only them, check our clerks'
# and servers' messages and error values, which a student's own need not share), the
# extra tests' planted bugs (tests/extra/ edits our raft/raft.py; tests/raft/test_extra.py
# itself ships), and docs/, the solution's measurements (its stress notes tell how bugs of
# it were fixed); rsm/, the solution's state-machine layer, which the 2023 labs leave to
# the student.
EXCLUDED = (
    SKELETON_DIR,
    "rsm/",
    "tests/skeleton/",
    "tests/raft/test_raft_edges.py",
    "tests/extra/",
    "tests/race/test_planted.py",
    "tests/lockwatch/test_planted.py",
    "tests/lockwatch/plants.py",
    "tests/kvraft/test_bad_input.py",
    "tests/shardctrler/test_bad_input.py",
    "tests/shardkv/test_bad_input.py",
    "tests/bad_input.py",
    "docs/",
)

PROJECT_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class SkeletonError(Exception):
    """A skeleton file that cannot be exported; the message names the file and line."""


def tracked_files(src):
    try:
        res = subprocess.run(
            ["git", "-C", src, "ls-files", "-z"], check=True, capture_output=True, text=True
        )
    except FileNotFoundError:
        raise SystemExit("skeleton: git is not installed") from None
    except subprocess.CalledProcessError as e:
        raise SystemExit(f"skeleton: {src} is not a git checkout: {e.stderr.strip()}") from None
    return [p for p in res.stdout.split("\0") if p]


def skeleton_files(files):
    """Map each exported path that a skeleton file replaces to that skeleton file."""
    return {p[len(SKELETON_DIR):]: p for p in files if p.startswith(SKELETON_DIR)}


def check_skeleton_source(text, path):
    """A skeleton Python file must compile."""
    try:
        compile(text, path, "exec")
    except SyntaxError as e:
        raise SkeletonError(f"{path}:{e.lineno}: the skeleton does not compile: {e.msg}") from None


def _excluded(path):
    return any(path == e or (e.endswith("/") and path.startswith(e)) for e in EXCLUDED)


def export(dest, src=PROJECT_ROOT):
    """Write the skeleton of the project at src into dest (empty or absent).
    Returns the list of exported paths, relative to dest."""
    src = os.path.abspath(src)
    dest = os.path.abspath(dest)
    if os.path.exists(dest):
        if not os.path.isdir(dest):
            raise SystemExit(f"skeleton: {dest} exists and is not a directory")
        if os.listdir(dest):
            raise SystemExit(f"skeleton: {dest} is not empty; refusing to write into it")

    tracked = [p for p in tracked_files(src) if os.path.lexists(os.path.join(src, p))]
    overlay = skeleton_files(tracked)
    if not overlay:
        raise SystemExit(f"skeleton: {src} has no tracked files under {SKELETON_DIR}")
    # Check everything first, so that an error leaves dest untouched.
    for rel, skel in overlay.items():
        if rel.endswith(".py"):
            with open(os.path.join(src, skel), encoding="utf-8") as f:
                check_skeleton_source(f.read(), skel)

    files = sorted(set(p for p in tracked if not _excluded(p)) | set(overlay))
    os.makedirs(dest, exist_ok=True)
    for rel in files:
        target = os.path.join(dest, rel)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        shutil.copy2(os.path.join(src, overlay.get(rel, rel)), target, follow_symlinks=False)
    return files


def main(argv=None):
    parser = argparse.ArgumentParser(description="Export the student skeleton of the labs.")
    parser.add_argument("dest", help="directory to create (must be empty or absent)")
    parser.add_argument("--src", default=PROJECT_ROOT, help="project to export (default: this checkout)")
    args = parser.parse_args(argv)
    try:
        exported = export(args.dest, args.src)
    except SkeletonError as e:
        print(f"skeleton: {e}", file=sys.stderr)
        return 1
    print(f"skeleton: wrote {len(exported)} files to {args.dest}, the lab packages from {SKELETON_DIR}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
