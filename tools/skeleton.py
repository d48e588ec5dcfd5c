"""Export the student skeleton: the whole project with the solution taken out.

    python tools/skeleton.py DEST        (or: make skeleton DEST=dir)

Every git-tracked file is copied to DEST unchanged, except the files listed in
SKELETON_FILES, which are cut down to the shape of the lab's starting code.
The skeleton is produced from markers in our solution files, so the two never
drift apart.  The markers are comments, so they do not change the solution's
code (its AST is the same with or without them).

Marker scheme (line-based; every marker is a whole line, with any indentation):

    <indent># BEGIN SOLUTION     the lines from here ...
    <indent># END SOLUTION       ... to here, both markers included, are
                                 dropped from the skeleton.
    <indent>#> <code>            a skeleton-only line: a comment in the
                                 solution, `<indent><code>` in the skeleton
                                 (one space after `#>` is removed, the rest
                                 is kept).  A bare `#>` becomes an empty line.

Solution blocks do not nest.  An unclosed block, an END without a BEGIN, a
nested BEGIN, a `#>` line inside a solution block, and a `#>` not followed by
a space are errors naming the file and line.  The skeleton of each file must
compile and may not mention BEGIN/END SOLUTION any more; a marker line in any
other exported Python file (one missing from SKELETON_FILES) is an error too.
After blocks are dropped, runs of more than two blank lines shrink to two.

DEST must be empty or absent.  Files not in git (the venv, caches, test
output) are not exported, nor is EXCLUDED (this exporter's own tests, which
would fail once a student's code passes the lab tests, and the race detector's
planted-bug test, which edits our own AppendEntries).
"""

import argparse
import os
import re
import shutil
import subprocess
import sys

# The solution files reduced to the lab's starting code (paths relative to the project root).
SKELETON_FILES = (
    "raft/raft.py",
    "raft/__init__.py",
    "kvraft/client.py",
    "kvraft/server.py",
    "kvraft/common.py",
    "kvraft/__init__.py",
)

# Tracked paths (files, or folders ending in "/") left out of the export.
EXCLUDED = ("tests/skeleton/", "tests/race/test_planted.py")

_BEGIN = re.compile(r"^[ \t]*# BEGIN SOLUTION[ \t]*$")
_END = re.compile(r"^[ \t]*# END SOLUTION[ \t]*$")
_SKEL = re.compile(r"^([ \t]*)#>(?: (.*))?$")
_SKEL_LOOSE = re.compile(r"^[ \t]*#>")
_LEFTOVER = re.compile(r"(BEGIN|END) SOLUTION")

PROJECT_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_SELF = "tools/skeleton.py"  # documents the markers, so it is not checked for them


class MarkerError(Exception):
    """A malformed marker; the message names the file and line."""


def transform(text, path="<string>"):
    """Return the skeleton version of a marked solution source text."""
    out = []
    begin_line = None  # line number of the open block's BEGIN, None outside a block
    removed = False
    for lineno, line in enumerate(text.splitlines(keepends=True), 1):
        body = line.rstrip("\r\n")
        newline = line[len(body):]
        if _BEGIN.match(body):
            if begin_line is not None:
                raise MarkerError(f"{path}:{lineno}: BEGIN SOLUTION inside the block opened at line {begin_line}")
            begin_line = lineno
            removed = True
            continue
        if _END.match(body):
            if begin_line is None:
                raise MarkerError(f"{path}:{lineno}: END SOLUTION without a BEGIN SOLUTION")
            begin_line = None
            continue
        if begin_line is not None:
            if _SKEL_LOOSE.match(body):
                raise MarkerError(
                    f"{path}:{lineno}: skeleton line (#>) inside the solution block opened at line {begin_line}"
                )
            continue
        m = _SKEL.match(body)
        if m:
            indent, code = m.group(1), m.group(2)
            out.append((indent + code if code else "") + (newline or "\n"))
            continue
        if _SKEL_LOOSE.match(body):
            raise MarkerError(f"{path}:{lineno}: a skeleton line needs a space after '#>'")
        out.append(line)
    if begin_line is not None:
        raise MarkerError(f"{path}:{begin_line}: BEGIN SOLUTION never closed by END SOLUTION")
    if removed:
        out = _squeeze_blank_lines(out)
    return "".join(out)


def _squeeze_blank_lines(lines):
    result = []
    blanks = 0
    for line in lines:
        if line.strip():
            blanks = 0
        else:
            blanks += 1
            if blanks > 2:
                continue
        result.append(line)
    return result


def check_skeleton_source(text, path):
    """The skeleton of a Python file must compile and carry no marker text."""
    for lineno, line in enumerate(text.splitlines(), 1):
        if _LEFTOVER.search(line):
            raise MarkerError(f"{path}:{lineno}: marker text left in the skeleton: {line.strip()!r}")
    try:
        compile(text, path, "exec")
    except SyntaxError as e:
        raise MarkerError(f"{path}:{e.lineno}: the skeleton does not compile: {e.msg}") from None


def check_unmarked(source, rel):
    """A file exported unchanged must carry no markers."""
    try:
        with open(source, encoding="utf-8") as f:
            lines = f.read().splitlines()
    except (FileNotFoundError, UnicodeDecodeError):
        return
    for lineno, line in enumerate(lines, 1):
        if _BEGIN.match(line) or _END.match(line) or _SKEL_LOOSE.match(line):
            raise MarkerError(f"{rel}:{lineno}: marker in a file that is not in SKELETON_FILES")


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

    files = [p for p in tracked_files(src) if not _excluded(p)]
    missing = [p for p in SKELETON_FILES if p not in files]
    if missing:
        raise SystemExit(f"skeleton: not tracked by git: {', '.join(missing)}")

    # Check and transform everything first, so that a marker error leaves dest untouched.
    for rel in files:
        if rel.endswith(".py") and rel not in SKELETON_FILES and rel != _SELF:
            check_unmarked(os.path.join(src, rel), rel)
    skeletons = {}
    for rel in SKELETON_FILES:
        with open(os.path.join(src, rel), encoding="utf-8") as f:
            text = transform(f.read(), rel)
        check_skeleton_source(text, rel)
        skeletons[rel] = text

    os.makedirs(dest, exist_ok=True)
    exported = []
    for rel in files:
        source = os.path.join(src, rel)
        if not os.path.lexists(source):
            print(f"skeleton: {rel} is tracked but absent from the working tree; skipped", file=sys.stderr)
            continue
        target = os.path.join(dest, rel)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        if rel in skeletons:
            with open(target, "w", encoding="utf-8", newline="") as f:
                f.write(skeletons[rel])
            shutil.copymode(source, target)
        else:
            shutil.copy2(source, target, follow_symlinks=False)
        exported.append(rel)
    return exported


def main(argv=None):
    parser = argparse.ArgumentParser(description="Export the student skeleton of the labs.")
    parser.add_argument("dest", help="directory to create (must be empty or absent)")
    parser.add_argument("--src", default=PROJECT_ROOT, help="project to export (default: this checkout)")
    args = parser.parse_args(argv)
    try:
        exported = export(args.dest, args.src)
    except MarkerError as e:
        print(f"skeleton: {e}", file=sys.stderr)
        return 1
    print(f"skeleton: wrote {len(exported)} files to {args.dest} ({len(SKELETON_FILES)} reduced to the skeleton)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
