"""The key/value service tests: the Python twin of kvraft/test_test.go.

Run with `python -m pytest -s -q tests/kvraft -k 3A` (or 3B).
"""

import os
import queue
import random
import tempfile
import threading
import time
from pathlib import Path

import pytest

import porcupine
from models.kv import KvInput, KvModel, KvOutput
from raft.util import print_line

from .config import make_config

# Elections get a generous second, far more than the paper's timeouts.
electionTimeout = 1.0

linearizabilityCheckTimeout = 1.0

_mark3A = getattr(pytest.mark, "3A")
_mark3B = getattr(pytest.mark, "3B")


class OpLog:
    """The porcupine history shared by all clients of a test."""

    def __init__(self):
        self.operations = []
        self.mu = threading.Lock()

    def Append(self, op):
        with self.mu:
            self.operations.append(op)

    def Read(self):
        with self.mu:
            return list(self.operations)


# Operation times are monotonic nanoseconds since this module was loaded, so
# a wall-clock step cannot reorder the history.
t0 = time.monotonic_ns()


def _since_t0():
    return time.monotonic_ns() - t0


# Get/Put/Append wrappers that count the op and, given an OpLog, record it.


def Get(cfg, ck, key, log, cli):
    start = _since_t0()
    v = ck.Get(key)
    end = _since_t0()
    cfg.op()
    if log is not None:
        log.Append(
            porcupine.Operation(
                Input=KvInput(Op=0, Key=key, Value=""),
                Output=KvOutput(Value=v),
                Call=start,
                Return=end,
                ClientId=cli,
            )
        )
    return v


def Put(cfg, ck, key, value, log, cli):
    start = _since_t0()
    ck.Put(key, value)
    end = _since_t0()
    cfg.op()
    if log is not None:
        log.Append(
            porcupine.Operation(
                Input=KvInput(Op=1, Key=key, Value=value),
                Output=KvOutput(Value=""),
                Call=start,
                Return=end,
                ClientId=cli,
            )
        )


def Append(cfg, ck, key, value, log, cli):
    start = _since_t0()
    ck.Append(key, value)
    end = _since_t0()
    cfg.op()
    if log is not None:
        log.Append(
            porcupine.Operation(
                Input=KvInput(Op=2, Key=key, Value=value),
                Output=KvOutput(Value=""),
                Call=start,
                Return=end,
                ClientId=cli,
            )
        )


def check(cfg, ck, key, value):
    v = Get(cfg, ck, key, None, -1)
    if v != value:
        pytest.fail(f"Get({key}): expected:\n{value}\nreceived:\n{v}")


def run_client(cfg, me, ca, fn):
    """Run fn as client `me` with a fresh clerk, then report success on ca."""
    ok = False
    try:
        ck = cfg.makeClient(cfg.All())
        fn(me, ck)
        ok = True
        cfg.deleteClient(ck)
    except BaseException as e:
        # t.Fatalf marks the test failed before the deferred send runs
        cfg.record(e)
        raise
    finally:
        ca.put(ok)


def spawn_clients_and_wait(cfg, ncli, fn):
    """Run ncli clients in threads and wait until every one is done."""
    ca = [queue.Queue() for _ in range(ncli)]
    for cli in range(ncli):
        cfg.go(run_client, cfg, cli, ca[cli], fn)
    for cli in range(ncli):
        ok = cfg.recv(ca[cli])
        if not ok:
            if threading.current_thread() is threading.main_thread():
                cfg.checkThreadErrors()  # show the client's own message
            pytest.fail("failure")


def NextValue(prev, val):
    """The value Append(k, val) leaves behind when the old value is prev."""
    return prev + val


def checkClntAppends(clnt, v, count):
    """Client clnt's appends 0..count-1 are all in v, once each, in order."""
    lastoff = -1
    for j in range(count):
        wanted = "x " + str(clnt) + " " + str(j) + " y"
        off = v.find(wanted)
        if off < 0:
            pytest.fail(f"{clnt} missing element {wanted} in Append result {v}")
        off1 = v.rfind(wanted)
        if off1 != off:
            pytest.fail(f"duplicate element {wanted} in Append result")
        if off <= lastoff:
            pytest.fail(f"wrong order for element {wanted} in Append result")
        lastoff = off


def checkConcurrentAppends(v, counts):
    """The same check for every client i with counts[i] appends."""
    nclients = len(counts)
    for i in range(nclients):
        lastoff = -1
        for j in range(counts[i]):
            wanted = "x " + str(i) + " " + str(j) + " y"
            off = v.find(wanted)
            if off < 0:
                pytest.fail(f"{i} missing element {wanted} in Append result {v}")
            off1 = v.rfind(wanted)
            if off1 != off:
                pytest.fail(f"duplicate element {wanted} in Append result")
            if off <= lastoff:
                pytest.fail(f"wrong order for element {wanted} in Append result")
            lastoff = off


def partitioner(cfg, ch, done):
    """Re-partition the servers at random until done is set."""
    try:
        while not done.is_set():
            a = [random.getrandbits(63) % 2 for _ in range(cfg.n)]
            pa = [[], []]
            for i in range(2):
                for j in range(cfg.n):
                    if a[j] == i:
                        pa[i].append(j)
            cfg.partition(pa[0], pa[1])
            time.sleep(electionTimeout + (random.getrandbits(63) % 200) / 1000)
    finally:
        ch.put(True)


def GenericTest(part, nclients, nservers, unreliable, crash, partitions, maxraftstate, randomkeys):
    """Clients run Get/Put/Append for a while, then every append must be there.

    With unreliable the network loses RPCs; with crash all servers restart
    after each round; with partitions the network is re-partitioned while the
    clients run. A positive maxraftstate bounds the Raft state at
    8*maxraftstate; -1 forbids snapshots. randomkeys makes clients share keys,
    checked by the linearizability checker only.
    """
    title = "Test: "
    if unreliable:
        # requests and replies may be lost
        title = title + "unreliable net, "
    if crash:
        # servers restart, so state must persist
        title = title + "restarts, "
    if partitions:
        # the network may be partitioned
        title = title + "partitions, "
    if maxraftstate != -1:
        title = title + "snapshots, "
    if randomkeys:
        title = title + "random keys, "
    if nclients > 1:
        title = title + "many clients"
    else:
        title = title + "one client"
    title = title + " (" + part + ")"  # 3A or 3B

    cfg = make_config(nservers, unreliable, maxraftstate)
    done_partitioner = threading.Event()
    done_clients = threading.Event()
    try:
        cfg.begin(title)
        opLog = OpLog()

        ck = cfg.makeClient(cfg.All())

        ch_partitioner = queue.Queue()
        clnts = [queue.Queue() for _ in range(nclients)]

        def client(cli, myck):
            j = 0
            try:
                last = ""  # the expected value of our key (own keys only)
                if not randomkeys:
                    Put(cfg, myck, str(cli), last, opLog, cli)
                while not done_clients.is_set():
                    if randomkeys:
                        key = str(random.randrange(nclients))
                    else:
                        key = str(cli)
                    nv = "x " + str(cli) + " " + str(j) + " y"
                    if (random.getrandbits(63) % 1000) < 500:
                        Append(cfg, myck, key, nv, opLog, cli)
                        if not randomkeys:
                            last = NextValue(last, nv)
                        j += 1
                    elif randomkeys and (random.getrandbits(63) % 1000) < 100:
                        # Puts only with random keys: they would break the Get
                        # check below
                        Put(cfg, myck, key, nv, opLog, cli)
                        j += 1
                    else:
                        v = Get(cfg, myck, key, opLog, cli)
                        # with random keys other clients change the value too
                        if not randomkeys and v != last:
                            pytest.fail(f"get wrong value, key {key}, wanted:\n{last}\n, got\n{v}\n")
            finally:
                clnts[cli].put(j)

        for i in range(3):
            done_clients.clear()
            done_partitioner.clear()
            cfg.go(spawn_clients_and_wait, cfg, nclients, client)

            if partitions:
                # let the clients make some progress first
                time.sleep(1)
                cfg.go(partitioner, cfg, ch_partitioner, done_partitioner)
            time.sleep(5)

            # stop the clients and the partitioner
            done_clients.set()
            done_partitioner.set()

            if partitions:
                cfg.recv(ch_partitioner)
                # Heal the network. A request sent into a minority returns only
                # once that server learns of a newer term, so give it one.
                cfg.ConnectAll()
                time.sleep(electionTimeout)

            if crash:
                for i in range(nservers):
                    cfg.ShutdownServer(i)
                # Shutdown is not an instant crash: let the servers wind down
                time.sleep(electionTimeout)
                # restart them all
                for i in range(nservers):
                    cfg.StartServer(i)
                cfg.ConnectAll()

            for i in range(nclients):
                j = cfg.recv(clnts[i])
                # a client's own failure message beats the follow-on errors
                cfg.checkThreadErrors()
                key = str(i)
                v = Get(cfg, ck, key, opLog, 0)
                if not randomkeys:
                    checkClntAppends(i, v, j)

            if maxraftstate > 0:
                # every request is applied by now and snapshots had time to happen
                sz = cfg.LogSize()
                if sz > 8 * maxraftstate:
                    pytest.fail(f"logs were not trimmed ({sz} > 8*{maxraftstate})")
            if maxraftstate < 0:
                # no snapshots allowed
                ssz = cfg.SnapshotSize()
                if ssz > 0:
                    pytest.fail(f"snapshot too large ({ssz}), should not be used when maxraftstate = {maxraftstate}")

        history = opLog.Read()
        checkStart = time.monotonic()
        res, info = porcupine.CheckOperationsVerbose(KvModel, history, linearizabilityCheckTimeout)
        # No Go twin: the check's cost, so stress runs can show how far it stays from the timeout.
        print_line(f"info: linearizability check of {len(history)} operations took {time.monotonic() - checkStart:.3f}s")
        if res == porcupine.Illegal:
            # Go writes to a temp file; here the page goes where `make clean` finds it:
            # mtests.py's output folder, else test-out/ in the project.
            outdir = Path(os.environ.get("PYLABS_OUT") or Path(__file__).resolve().parents[2] / "test-out")
            try:
                outdir.mkdir(parents=True, exist_ok=True)
                fd, name = tempfile.mkstemp(suffix=".html", prefix=f"{part}-history-", dir=outdir)
                os.close(fd)
            except OSError:
                print_line("info: failed to create temp file for visualization")
            else:
                try:
                    err = porcupine.VisualizePath(KvModel, info, name)
                except Exception as e:  # Go returns an error value instead
                    err = e
                if err:
                    print_line(f"info: failed to write history visualization to {name}")
                else:
                    print_line(f"info: wrote history visualization to {name}")
            pytest.fail("history is not linearizable")
        elif res == porcupine.Unknown:
            print_line("info: linearizability check timed out, assuming history is ok")

        cfg.end()
    finally:
        # stop the helpers even when the test failed midway (Go leaves them)
        done_clients.set()
        done_partitioner.set()
        cfg.cleanup()


def _go_duration(ns):
    """Format nanoseconds like Go's time.Duration.String()."""
    if ns == 0:
        return "0s"
    if ns < 1000:
        return f"{ns}ns"
    for unit, size in (("µs", 1000), ("ms", 1000000)):
        if ns < size * 1000:
            return f"{ns / size:.{len(str(size)) - 1}f}".rstrip("0").rstrip(".") + unit
    return f"{ns / 1e9:.9f}".rstrip("0").rstrip(".") + "s"


def GenericTestSpeed(part, maxraftstate):
    """Sequential ops must complete faster than one per heartbeat interval."""
    nservers = 3
    numOps = 1000
    cfg = make_config(nservers, False, maxraftstate)
    try:
        ck = cfg.makeClient(cfg.All())

        cfg.begin(f"Test: ops complete fast enough ({part})")

        # the first op completes once a leader is elected and the servers serve
        ck.Get("x")

        start = time.monotonic_ns()
        for i in range(numOps):
            ck.Append("x", "x 0 " + str(i) + " y")
        dur = time.monotonic_ns() - start

        v = ck.Get("x")
        checkClntAppends(0, v, numOps)

        # heartbeats come about every 100 ms; demand at least 3 ops per beat
        heartbeatInterval = 100 * 1000 * 1000  # ns
        opsPerInterval = 3
        timePerOp = heartbeatInterval // opsPerInterval
        if dur > numOps * timePerOp:
            pytest.fail(
                f"Operations completed too slowly {_go_duration(dur // numOps)}/op > {_go_duration(timePerOp)}/op\n"
            )

        cfg.end()
    finally:
        cfg.cleanup()


@_mark3A
def TestBasic3A():
    GenericTest("3A", 1, 5, False, False, False, -1, False)


@_mark3A
def TestSpeed3A():
    GenericTestSpeed("3A", -1)


@_mark3A
def TestConcurrent3A():
    GenericTest("3A", 5, 5, False, False, False, -1, False)


@_mark3A
def TestUnreliable3A():
    GenericTest("3A", 5, 5, True, False, False, -1, False)


@_mark3A
def TestUnreliableOneKey3A():
    nservers = 3
    cfg = make_config(nservers, True, -1)
    try:
        ck = cfg.makeClient(cfg.All())

        cfg.begin("Test: concurrent append to same key, unreliable (3A)")

        Put(cfg, ck, "k", "", None, -1)

        nclient = 5
        upto = 10

        def client(me, myck):
            n = 0
            while n < upto:
                Append(cfg, myck, "k", "x " + str(me) + " " + str(n) + " y", None, -1)
                n += 1

        spawn_clients_and_wait(cfg, nclient, client)

        counts = []
        for i in range(nclient):
            counts.append(upto)

        vx = Get(cfg, ck, "k", None, -1)
        checkConcurrentAppends(vx, counts)

        cfg.end()
    finally:
        cfg.cleanup()


def _wait_any(events, timeout):
    """Index of the first of events to be set within timeout, else None."""
    deadline = time.monotonic() + timeout
    while True:
        for i, ev in enumerate(events):
            if ev.is_set():
                return i
        if time.monotonic() >= deadline:
            return None
        time.sleep(0.005)


@_mark3A
def TestOnePartition3A():
    """A request sent to the minority must not complete until the partition heals.

    The original leader ends up in the minority.
    """
    nservers = 5
    cfg = make_config(nservers, False, -1)
    try:
        ck = cfg.makeClient(cfg.All())

        Put(cfg, ck, "1", "13", None, -1)

        cfg.begin("Test: progress in majority (3A)")

        p1, p2 = cfg.make_partition()
        cfg.partition(p1, p2)

        ckp1 = cfg.makeClient(p1)  # connected to p1
        ckp2a = cfg.makeClient(p2)  # connected to p2
        ckp2b = cfg.makeClient(p2)  # connected to p2

        Put(cfg, ckp1, "1", "14", None, -1)
        check(cfg, ckp1, "1", "14")

        cfg.end()

        # Go's unbuffered done channels become events: set when the op returns
        done0 = threading.Event()
        done1 = threading.Event()

        cfg.begin("Test: no progress in minority (3A)")

        def minority_put():
            Put(cfg, ckp2a, "1", "15", None, -1)
            done0.set()

        def minority_get():
            Get(cfg, ckp2b, "1", None, -1)  # a second clerk in p2
            done1.set()

        cfg.go(minority_put)
        cfg.go(minority_get)

        which = _wait_any([done0, done1], 1.0)
        if which == 0:
            pytest.fail("Put in minority completed")
        elif which == 1:
            pytest.fail("Get in minority completed")

        check(cfg, ckp1, "1", "14")
        Put(cfg, ckp1, "1", "16", None, -1)
        check(cfg, ckp1, "1", "16")

        cfg.end()

        cfg.begin("Test: completion after heal (3A)")

        cfg.ConnectAll()
        cfg.ConnectClient(ckp2a, cfg.All())
        cfg.ConnectClient(ckp2b, cfg.All())

        time.sleep(electionTimeout)

        if not done0.wait(30 * 100 / 1000):
            pytest.fail("Put did not complete")

        # Go's select here has a default branch: it polls done1 once and
        # never waits or fails, whatever the Get is doing.
        if done1.is_set():
            pass

        check(cfg, ck, "1", "15")

        cfg.end()
    finally:
        cfg.cleanup()


@_mark3A
def TestManyPartitionsOneClient3A():
    GenericTest("3A", 1, 5, False, False, True, -1, False)


@_mark3A
def TestManyPartitionsManyClients3A():
    GenericTest("3A", 5, 5, False, False, True, -1, False)


@_mark3A
def TestPersistOneClient3A():
    GenericTest("3A", 1, 5, False, True, False, -1, False)


@_mark3A
def TestPersistConcurrent3A():
    GenericTest("3A", 5, 5, False, True, False, -1, False)


@_mark3A
def TestPersistConcurrentUnreliable3A():
    GenericTest("3A", 5, 5, True, True, False, -1, False)


@_mark3A
def TestPersistPartition3A():
    GenericTest("3A", 5, 5, False, True, True, -1, False)


@_mark3A
def TestPersistPartitionUnreliable3A():
    GenericTest("3A", 5, 5, True, True, True, -1, False)


@_mark3A
def TestPersistPartitionUnreliableLinearizable3A():
    GenericTest("3A", 15, 7, True, True, True, -1, True)


@_mark3B
def TestSnapshotRPC3B():
    """A server that fell behind must catch up, by InstallSnapshot if need be.

    Also: the majority trims its log even when the minority is silent.
    """
    nservers = 3
    maxraftstate = 1000
    cfg = make_config(nservers, False, maxraftstate)
    try:
        ck = cfg.makeClient(cfg.All())

        cfg.begin("Test: InstallSnapshot RPC (3B)")

        Put(cfg, ck, "a", "A", None, -1)
        check(cfg, ck, "a", "A")

        # many Puts in the majority
        cfg.partition([0, 1], [2])
        ck1 = cfg.makeClient([0, 1])
        for i in range(50):
            Put(cfg, ck1, str(i), str(i), None, -1)
        time.sleep(electionTimeout)
        Put(cfg, ck1, "b", "B", None, -1)

        # the majority must have dropped most of its log
        sz = cfg.LogSize()
        if sz > 8 * maxraftstate:
            pytest.fail(f"logs were not trimmed ({sz} > 8*{maxraftstate})")

        # a majority that needs the lagging server, which must catch up
        cfg.partition([0, 2], [1])
        ck1 = cfg.makeClient([0, 2])
        Put(cfg, ck1, "c", "C", None, -1)
        Put(cfg, ck1, "d", "D", None, -1)
        check(cfg, ck1, "a", "A")
        check(cfg, ck1, "b", "B")
        check(cfg, ck1, "1", "1")
        check(cfg, ck1, "49", "49")

        # everyone together again
        cfg.partition([0, 1, 2], [])

        Put(cfg, ck, "e", "E", None, -1)
        check(cfg, ck, "c", "C")
        check(cfg, ck, "e", "E")
        check(cfg, ck, "1", "1")

        cfg.end()
    finally:
        cfg.cleanup()


@_mark3B
def TestSnapshotSize3B():
    """Snapshots stay small: 500 bytes is plenty for these ops."""
    nservers = 3
    maxraftstate = 1000
    maxsnapshotstate = 500
    cfg = make_config(nservers, False, maxraftstate)
    try:
        ck = cfg.makeClient(cfg.All())

        cfg.begin("Test: snapshot size is reasonable (3B)")

        for i in range(200):
            Put(cfg, ck, "x", "0", None, -1)
            check(cfg, ck, "x", "0")
            Put(cfg, ck, "x", "1", None, -1)
            check(cfg, ck, "x", "1")

        # the servers must have dropped most of their logs
        sz = cfg.LogSize()
        if sz > 8 * maxraftstate:
            pytest.fail(f"logs were not trimmed ({sz} > 8*{maxraftstate})")

        # and the snapshots must be small
        ssz = cfg.SnapshotSize()
        if ssz > maxsnapshotstate:
            pytest.fail(f"snapshot too large ({ssz} > {maxsnapshotstate})")

        cfg.end()
    finally:
        cfg.cleanup()


@_mark3B
def TestSpeed3B():
    GenericTestSpeed("3B", 1000)


@_mark3B
def TestSnapshotRecover3B():
    GenericTest("3B", 1, 5, False, True, False, 1000, False)


@_mark3B
def TestSnapshotRecoverManyClients3B():
    GenericTest("3B", 20, 5, False, True, False, 1000, False)


@_mark3B
def TestSnapshotUnreliable3B():
    GenericTest("3B", 5, 5, True, False, False, 1000, False)


@_mark3B
def TestSnapshotUnreliableRecover3B():
    GenericTest("3B", 5, 5, True, True, False, 1000, False)


@_mark3B
def TestSnapshotUnreliableRecoverConcurrentPartition3B():
    GenericTest("3B", 5, 5, True, True, True, 1000, False)


@_mark3B
def TestSnapshotUnreliableRecoverConcurrentPartitionLinearizable3B():
    GenericTest("3B", 15, 7, True, True, True, 1000, True)
