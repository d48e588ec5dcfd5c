"""The classic Raft bugs the extra tests catch, planted in a copy of the solution.

    python -m tests.extra.plants NAME DEST     a copy of the project with bug NAME in raft/raft.py

Each plant is one small edit of raft/raft.py (anchor text -> replacement);
an anchor that is gone (the solution was rewritten) is an error naming the
plant, not a silently clean copy.  tests/extra/test_plants.py runs the extra
tests on each copy under --sim; docs/extra.md has the full measurement.
"""

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
RAFT = "raft/raft.py"
TEST_FILE = "tests/raft/test_extra.py"
# Where Figure 2's AppendEntries receiver 3 and 4 begin, which the truncating plants replace.
APPEND_LOOP = "            first = args.PrevLogIndex + 1\n            pos = self.log.find_conflict(first, args.Entries)\n"


def truncating(guard, indent):
    """A replacement of APPEND_LOOP: under `guard`, cut the log after prevLogIndex and
    append the entries, conflict or not (the conflict scan no longer runs)."""
    return (
        f"{guard}"
        f"{indent}if args.PrevLogIndex < last:\n"
        # -1: a student's Raft has no guard against cutting committed entries; ours would
        # raise in the handler and hide the rule the extra test names.
        f"{indent}    self.log.truncate_from(args.PrevLogIndex + 1, -1)\n"
        f"{indent}self.log.append(args.Entries)\n"
        f"{indent}self.persist()\n"
        "            first = args.PrevLogIndex + 1\n"
        "            pos = len(args.Entries)  # planted: nothing is left to append\n"
    )


# name -> (what the bug is, [(anchor, replacement), ...])
PLANTS = {
    "vote_not_persisted": (
        "a granted vote is not persisted before the reply (a restarted peer forgets it)",
        [(
            "                    self.votedFor = args.CandidateId\n                    self.persist()\n",
            "                    self.votedFor = args.CandidateId\n",
        )],
    ),
    "stale_leader_ignores_reply_term": (
        "a leader ignores a higher term in AppendEntries and InstallSnapshot replies",
        [(
            "            return False, False\n        with self.mu:\n            self._observeTerm(reply.Term)\n"
            "            if self.state != LEADER or self.currentTerm != term:\n",
            "            return False, False\n        with self.mu:\n"
            "            if self.state != LEADER or self.currentTerm != term:\n",
        ), (
            "        with self.mu:\n            self._observeTerm(reply.Term)\n"
            "            if self.state != LEADER or self.currentTerm != args.Term:\n",
            "        with self.mu:\n"
            "            if self.state != LEADER or self.currentTerm != args.Term:\n",
        )],
    ),
    "figure8_counts_old_term": (
        "a leader commits an entry of an older term by counting its replicas",
        [(
            " and self.log.term(n) == self.currentTerm:\n",
            ":\n",
        )],
    ),
    "truncate_every_append": (
        "a follower truncates its log after prevLogIndex on every AppendEntries, conflict or not",
        [(APPEND_LOOP, truncating("", " " * 12))],
    ),
    "vote_keeps_timer": (
        "granting a vote does not reset the election timer",
        [(
            "                reply.VoteGranted = True\n"
            "                # Figure 2, Rules for Followers 2: granting a vote postpones our own election.\n"
            "                self._resetElectionTimer()\n",
            "                reply.VoteGranted = True\n",
        )],
    ),
    "slow_heartbeats": (
        "heartbeats slower than the election timeout",
        [(
            "HEARTBEAT_INTERVAL = 0.100",
            "HEARTBEAT_INTERVAL = 0.600",
        )],
    ),
}


# Other forms of the same bug classes: measured (docs/extra.md), not run by test_plants.py.
VARIANTS = {
    "vote_not_restored": (
        "Make does not restore votedFor from the persisted state",
        [("        self.votedFor = votedFor\n", "")],
    ),
    "stale_leader_ignores_append_reply_term": (
        "a leader ignores a higher term in AppendEntries replies (InstallSnapshot's still count)",
        PLANTS["stale_leader_ignores_reply_term"][1][:1],
    ),
    "truncate_on_entries": (
        "a follower truncates its log after prevLogIndex on every AppendEntries that carries entries",
        [(APPEND_LOOP, truncating(" " * 12 + "if args.Entries:\n", " " * 16))],
    ),
    "append_not_persisted": (
        "a follower appends entries without persisting them before its reply",
        [(
            "                self.log.append(args.Entries[pos:])\n                self.persist()\n",
            "                self.log.append(args.Entries[pos:])\n",
        )],
    ),
    "heartbeats_350ms": (
        "heartbeats every 350 ms, inside the election timeout's range (300-500 ms)",
        [("HEARTBEAT_INTERVAL = 0.100", "HEARTBEAT_INTERVAL = 0.350")],
    ),
}


class PlantError(Exception):
    pass


def plant(name, raft_py):
    """Apply plant `name` to the file raft_py (a Path)."""
    edits = {**PLANTS, **VARIANTS}.get(name)
    if edits is None:
        raise PlantError(f"unknown plant {name!r}; expected one of {sorted(PLANTS) + sorted(VARIANTS)}")
    src = raft_py.read_text()
    for anchor, replacement in edits[1]:
        if src.count(anchor) != 1:
            raise PlantError(f"plant {name}: its anchor occurs {src.count(anchor)} times in {raft_py}, not once:\n{anchor}")
        src = src.replace(anchor, replacement)
    raft_py.write_text(src)


def planted_copy(dest, name=None):
    """Copy the project to dest (no .git, venv or caches), with plant `name` if given."""
    dest = Path(dest)
    shutil.copytree(
        ROOT, dest,
        ignore=shutil.ignore_patterns(".git", ".venv", "mtests-out", "test-out", "__pycache__", "*.egg-info"),
    )
    if name is not None:
        plant(name, dest / RAFT)
    return dest


def run_extra(copy, target, seed):
    """Run `pytest target --sim --sim-seed seed` in the copy; (exit status, output)."""
    env = dict(os.environ)
    env.pop("VERBOSE", None)
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", target, "--sim", "--sim-seed", str(seed)],
        cwd=copy, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True, timeout=600,
    )
    return proc.returncode, proc.stdout


def main(argv):
    if len(argv) != 2:
        raise SystemExit(f"usage: python -m tests.extra.plants NAME DEST  (NAME: {', '.join([*PLANTS, *VARIANTS])})")
    name, dest = argv
    try:
        planted_copy(dest, name)
    except PlantError as e:
        raise SystemExit(f"plants: {e}") from None
    print(dest)


if __name__ == "__main__":
    main(sys.argv[1:])
