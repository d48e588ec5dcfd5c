"""Lock mistakes planted in a copy of the solution's raft/raft.py, as a student makes them.

Each plant replaces one passage of the source by its faulty twin; a passage
that is no longer there fails the plant with a clear message, so a change to
the solution that moves it shows up here.
"""

import shutil
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# The classic 2A bug: the vote sender holds its peer's lock across the RPC.  Two
# candidates each hold their own lock and call the other, whose handler waits for it.
VOTE_UNDER_LOCK = (
    """        reply = RequestVoteReply()
        if not self.sendRequestVote(peer, args, reply):
            return
        with self.mu:
            self._observeTerm(reply.Term)
""",
    """        reply = RequestVoteReply()
        with self.mu:  # planted: the lock held across the RPC
            if not self.sendRequestVote(peer, args, reply):
                return
            self._observeTerm(reply.Term)
""",
)

# The ticker asks GetState() (which takes mu) inside its own `with self.mu:`.
REENTRANT_GETSTATE = (
    """            while not self.dead:
                now = time.monotonic()
                if self.state == LEADER:""",
    """            while not self.dead:
                now = time.monotonic()
                if self.GetState()[1]:  # planted: GetState takes mu, which the ticker holds""",
)

# The applier sends on applyCh while holding mu.
APPLY_UNDER_LOCK = (
    """            for msg in msgs:
                if not self.applyCh.send(msg, stop=self.killed):
                    return  # killed, or the channel was closed: the service is gone
""",
    """            for msg in msgs:
                with self.mu:  # planted: the lock held across the applyCh send
                    if not self.applyCh.send(msg, stop=self.killed):
                        return
""",
)

# Go's `go` under the lock: the ticker starts its vote senders itself, holding mu
# (the solution's ticker did until Thread.start()'s wait showed in a stress run).
START_UNDER_LOCK = (
    """        self.toStart.append(threading.Thread(target=target, args=args, name=name, daemon=True))
        self.starterCond.notify()
""",
    """        threading.Thread(target=target, args=args, name=name, daemon=True).start()  # planted: started holding mu
""",
)

PLANTS = {
    "vote_under_lock": VOTE_UNDER_LOCK,
    "reentrant_getstate": REENTRANT_GETSTATE,
    "apply_under_lock": APPLY_UNDER_LOCK,
    "start_under_lock": START_UNDER_LOCK,
}


def copy_project(dest):
    shutil.copytree(
        ROOT, dest,
        ignore=shutil.ignore_patterns(".git", ".venv", "mtests-out", "test-out", "__pycache__", "*.egg-info"),
    )


def plant(project, name):
    """Plant bug `name` in project/raft/raft.py; the line numbers of the planted passage."""
    old, new = PLANTS[name]
    raft_py = Path(project) / "raft" / "raft.py"
    src = raft_py.read_text()
    if src.count(old) != 1:
        raise AssertionError(f"cannot plant {name}: its passage is not (once) in {raft_py}:\n{old}")
    raft_py.write_text(src.replace(old, new))
    first = src[: src.index(old)].count("\n") + 1
    return range(first, first + new.count("\n"))
