"""The lab tests under simulated time (--sim): wall seconds on one core, against the issue's bar.

Each suite runs in its own pytest process pinned to one CPU (taskset, where it exists), with
a fixed seed; the figure is the process's wall time.  The virtual seconds are the sum of the
"... Passed -- time" column: what the same tests take in real time, roughly."""

import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SEED = 1
SUITES = (
    # (name, test file, the bar: wall seconds on one core)
    ("Raft 2A-2D", "tests/raft/test_raft.py", 30.0),
    ("kvraft 3A-3B", "tests/kvraft/test_kvraft.py", 120.0),
    ("shardctrler 4A + shardkv 4B", "tests/shardctrler/test_shardctrler.py tests/shardkv/test_shardkv.py", None),
)
_PASSED = re.compile(r"\.\.\. Passed --\s+(\d+\.\d+)")


def run_suite(files):
    cmd = [sys.executable, "-m", "pytest", "-q", "-s", "-p", "no:cacheprovider", "--sim", "--sim-seed", str(SEED), *files.split()]
    if shutil.which("taskset"):
        cmd = ["taskset", "-c", "0"] + cmd
    env = dict(os.environ, PYTHONHASHSEED="0")
    env.pop("VERBOSE", None)
    t0 = time.monotonic()
    proc = subprocess.run(cmd, cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True)
    wall = time.monotonic() - t0
    virtual = sum(float(m) for m in _PASSED.findall(proc.stdout))
    summary = proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else ""
    return proc.returncode, wall, virtual, summary


def run():
    pinned = "one core (taskset -c 0)" if shutil.which("taskset") else "all cores (no taskset here)"
    for name, files, bar in SUITES:
        rc, wall, virtual, summary = run_suite(files)
        verdict = "" if bar is None else f", bar {bar:.0f} s: {'met' if wall <= bar and rc == 0 else 'NOT met'}"
        virt = f", {virtual:.0f} virtual s in the Passed lines" if virtual else ""
        print(f"sim: {name}: {wall:.1f} s wall on {pinned}, seed {SEED}{virt} ({summary}){verdict}")
