"""The TestSpeed3A / TestSpeed3B workloads, built straight from the labrpc, persister and kvraft APIs:
3 servers on a reliable network, one clerk, one Get, then 1000 sequential Appends."""

import random
import threading
import time

from labrpc import MakeNetwork, MakeServer, MakeService
from persister import MakePersister

NSERVERS = 3
NUMOPS = 1000
TIME_PER_OP = 0.100 / 3  # Go's limit: a 100 ms heartbeat interval must fit 3 ops
DEADLINE = 120.0  # Go's checkTimeout for a whole test


def available():
    """None if kvraft can be benchmarked, else the reason it cannot."""
    try:
        import kvraft
    except Exception as e:  # any import failure means there is nothing to measure
        return f"kvraft is not importable ({type(e).__name__}: {e})"
    missing = [n for n in ("StartKVServer", "MakeClerk") if not hasattr(kvraft, n)]
    if missing:
        return f"kvraft does not provide {', '.join(missing)} yet"
    return None


def speed(maxraftstate, nservers=NSERVERS, numOps=NUMOPS):
    """Run the workload; returns seconds per op of the timed Appends."""
    import kvraft

    net = MakeNetwork()
    kvservers = []
    try:
        for i in range(nservers):
            ends = []
            for j in range(nservers):
                name = f"kv{i}->{j}"
                ends.append(net.MakeEnd(name))
                net.Connect(name, j)
            kv = kvraft.StartKVServer(ends, i, MakePersister(), maxraftstate)
            kvservers.append(kv)
            srv = MakeServer()
            srv.AddService(MakeService(kv))
            srv.AddService(MakeService(kv.rf))
            net.AddServer(i, srv)
        for i in range(nservers):
            for j in range(nservers):
                net.Enable(f"kv{i}->{j}", True)
        net.Reliable(True)

        ends = []
        for j in range(nservers):
            name = f"clerk->{j}"
            ends.append(net.MakeEnd(name))
            net.Connect(name, j)
            net.Enable(name, True)
        random.shuffle(ends)
        ck = kvraft.MakeClerk(ends)

        ck.Get("x")  # waits for a leader; not timed

        t0 = time.perf_counter()
        for i in range(numOps):
            ck.Append("x", "x 0 " + str(i) + " y")
        dur = time.perf_counter() - t0

        v = ck.Get("x")
        want = "".join("x 0 " + str(i) + " y" for i in range(numOps))
        if v != want:
            raise AssertionError(f"Get(x) after {numOps} appends returned {len(v)} chars, not the "
                                 f"{len(want)} the appends wrote")
        return dur / numOps
    finally:
        for kv in kvservers:
            kv.Kill()
        net.Cleanup()


def _run_with_deadline(maxraftstate):
    """speed() in a worker thread, so that a kvraft that never answers cannot hang the bench."""
    result = {}

    def worker():
        try:
            result["per_op"] = speed(maxraftstate)
        except BaseException as e:  # reported by the main thread
            result["error"] = e

    t = threading.Thread(target=worker, name=f"bench-kvraft-{maxraftstate}", daemon=True)
    t.start()
    t.join(DEADLINE)
    if t.is_alive():
        result["error"] = TimeoutError(f"did not finish within {DEADLINE:.0f} s")
    return result


def run():
    why = available()
    if why is not None:
        print(f"kvraft: skipped, {why}")
        return
    before = set(threading.enumerate())
    for part, maxraftstate in (("3A", -1), ("3B", 1000)):
        r = _run_with_deadline(maxraftstate)
        if "error" in r:
            e = r["error"]
            print(f"kvraft: TestSpeed{part} workload (maxraftstate {maxraftstate}) failed: "
                  f"{type(e).__name__}: {e}")
            continue
        per_op = r["per_op"]
        print(f"kvraft: TestSpeed{part} workload (maxraftstate {maxraftstate}): "
              f"{per_op * 1000:.2f} ms/op over {NUMOPS} Appends (Go limit {TIME_PER_OP * 1000:.2f} ms/op)")
    deadline = time.monotonic() + 5
    while True:
        left = [t for t in threading.enumerate() if t not in before and t.is_alive()]
        if not left or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    if left:
        names = sorted(t.name for t in left)
        print(f"kvraft: {len(left)} threads still alive 5 s after cleanup: {names[:10]}")
