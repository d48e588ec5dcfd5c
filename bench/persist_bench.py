"""Raft's persist() against the length of its log: what one Start costs on disk.

For each length, a peer (no threads) with that many kvraft-like entries appends one
entry and persists, as Start does, CALLS times; the figure is the median over ROUNDS
rounds of the time per append-and-persist.  A persist whose cost grows with the log
makes a long-running service slower with every entry it has not snapshotted."""

import statistics
import time

from persister import MakePersister

LENGTHS = (100, 1000, 10000)
ROUNDS = 5
CALLS = 50


def available():
    """None if the solution's Raft can be benchmarked, else the reason it cannot."""
    try:
        from raft.raft import Log  # noqa: F401  (the solution's; a student's Raft may have none)
    except Exception as e:
        return f"raft.raft has no Log type ({type(e).__name__}: {e})"
    return None


def _peer(n):
    import raft
    from kvraft.server import Op

    rf = raft.Raft([None] * 3, 0, MakePersister(), raft.Chan())
    rf.log.append([[1, Op("Append", f"k{i % 10}", f"x {i} {i % 7} y", 4_611_686_018_427_387_904 + i, i)] for i in range(n)])
    return rf


def per_persist(n):
    """Seconds per append-and-persist on a log of n entries, and the state's size in bytes."""
    from kvraft.server import Op

    rounds = []
    for _ in range(ROUNDS):
        rf = _peer(n)
        t0 = time.perf_counter()
        for i in range(CALLS):
            rf.log.append([[1, Op("Append", "k", f"x {i} y", 7, n + i)]])
            rf.persist()
        rounds.append((time.perf_counter() - t0) / CALLS)
    return statistics.median(rounds), rf.persister.RaftStateSize()


def run():
    why = available()
    if why:
        print(f"persist: skipped: {why}")
        return
    print(f"persist: one append and persist on a log of n entries (median of {ROUNDS} rounds of {CALLS})")
    for n in LENGTHS:
        secs, size = per_persist(n)
        print(f"  n = {n:6d}   {secs * 1e6:8.1f} us   (state {size / 1024:7.1f} KiB)")
