"""Test harness for the key/value service: the Python twin of kvraft/config.go.

A config owns a simulated network, n KVServers (each with its Raft), their
persisters and the clerks that tests create. Helper names and numbers follow
the Go harness so the two can be read side by side.
"""

import base64
import os
import queue
import random
import sys
import threading
import time
import traceback

import pytest

import labrpc
import timeline
from kvraft import MakeClerk, StartKVServer
from persister import MakePersister
from raft.util import print_line
from tests.gotest import leftover_threads_message, report_leftover_threads

# the real-time limit on one test (Go: 120*time.Second)
TEST_TIME_LIMIT = 120.0

# how long cleanup waits for the threads of a finished test to end
THREAD_EXIT_WAIT = 5.0


def randstring(n):
    b = os.urandom(2 * n)
    s = base64.urlsafe_b64encode(b).decode("ascii")
    return s[0:n]


def random_handles(kvh):
    """Return a copy of kvh in random order (Fisher-Yates, as the Go harness)."""
    sa = list(kvh)
    for i in range(len(sa)):
        j = random.randrange(i + 1)
        sa[i], sa[j] = sa[j], sa[i]
    return sa


class ClerkAbandoned(pytest.fail.Exception):
    """Raised by a clerk's end once the test is over (or out of time).

    A Go test binary exits and takes stuck clerk goroutines with it; pytest runs
    every test in one process, so a clerk still retrying after cleanup has to be
    stopped. It derives from pytest's failure outcome (a BaseException) so a
    clerk's `except Exception` cannot swallow it.
    """


class _ClerkEnd:
    """A clerk's ClientEnd, refusing new calls once the config abandons its clerks."""

    __slots__ = ("end", "cfg")

    def __init__(self, end, cfg):
        self.end = end
        self.cfg = cfg

    def Call(self, svcMeth, args, reply):
        reason = self.cfg._abandon_reason
        if reason is not None:
            raise ClerkAbandoned(reason)
        return self.end.Call(svcMeth, args, reply)


_ncpu_once = threading.Lock()
_ncpu_done = False


class config:
    def __init__(self):
        self.mu = threading.Lock()
        self.net = None
        self.n = 0
        self.kvservers = []
        self.saved = []
        self.endnames = []  # endnames[i][j]: name of server i's end to server j
        self.clerks = {}  # id(ck) -> (ck, endnames); Clerk need not be hashable
        self.nextClientId = 0
        self.maxraftstate = 0
        self.start = 0.0  # when make_config() ran (for the time limit)
        # what begin() records and end() reports
        self.t0 = 0.0  # when begin() ran
        self.rpcs0 = 0  # the RPC count when begin() ran
        self.ops = 0  # Get/Put/Append wrapper calls since begin()
        self._ops_mu = threading.Lock()
        # Python-only bookkeeping: failures raised in helper threads, the
        # threads alive before the test, and the clerk stop switch.
        self._errors = []
        self._errors_mu = threading.Lock()
        self._threads0 = set()
        self._abandon_reason = None
        self._cleaned_up = False
        self._watchdog_stop = threading.Event()

    # ---- failure bookkeeping (Go's t.Failed / t.Fatalf from goroutines) ----

    def record(self, exc):
        """Remember an exception raised in a helper thread; the test will fail."""
        if getattr(exc, "_kvraft_recorded", False):
            return
        try:
            exc._kvraft_recorded = True
        except AttributeError:
            pass
        if isinstance(exc, pytest.fail.Exception):
            text = str(exc.msg)
        else:
            text = "".join(traceback.format_exception(exc)).rstrip()
        timeline.failure(text)
        with self._errors_mu:
            self._errors.append(f"[{threading.current_thread().name}] {text}")

    def go(self, fn, *args):
        """Start fn(*args) in a daemon thread, as the Go tests start goroutines."""

        def body():
            try:
                fn(*args)
            except ClerkAbandoned as e:
                if not self._cleaned_up:
                    self.record(e)
            except BaseException as e:  # any escape from a helper fails the test
                self.record(e)

        th = threading.Thread(target=body, name=f"kvtest-{getattr(fn, '__name__', 'go')}", daemon=True)
        th.start()
        return th

    def thread_errors(self):
        with self._errors_mu:
            return list(self._errors)

    def failed(self):
        return bool(self.thread_errors()) or sys.exc_info()[0] is not None

    def checkThreadErrors(self):
        """Fail the test (in the calling, main thread) if a helper thread failed."""
        errs = self.thread_errors()
        if errs:
            pytest.fail("failure in a client thread:\n" + "\n".join(errs))

    def recv(self, q):
        """Receive from a channel (queue) like `<-ch`, bounded by the test time limit."""
        while True:
            try:
                return q.get(timeout=0.1)
            except queue.Empty:
                # Go would block until the go-test timeout; the test is lost anyway
                if time.monotonic() - self.start > TEST_TIME_LIMIT:
                    self.checkThreadErrors()
                    pytest.fail("test took longer than 120 seconds")

    def _watchdog(self):
        # stop clerks still retrying past the limit, so a wedged test fails
        # instead of hanging the whole pytest process
        if not self._watchdog_stop.wait(TEST_TIME_LIMIT):
            self._abandon_reason = "test took longer than 120 seconds"

    # ---- Go helpers ----

    def checkTimeout(self):
        # a test may run for at most two minutes of wall time
        if not self.failed() and time.monotonic() - self.start > TEST_TIME_LIMIT:
            pytest.fail("test took longer than 120 seconds")

    @timeline.traced
    def cleanup(self):
        in_flight = sys.exc_info()[0] is not None
        with self.mu:
            for i in range(len(self.kvservers)):
                if self.kvservers[i] is not None:
                    self.kvservers[i].Kill()
            self.net.Cleanup()
        self._cleaned_up = True
        self._abandon_reason = "the test is over"
        self._watchdog_stop.set()
        self.checkTimeout()

        # every thread started by this test must end (Python cannot kill them)
        deadline = time.monotonic() + THREAD_EXIT_WAIT
        while True:
            left = [t for t in threading.enumerate() if t not in self._threads0 and t.is_alive()]
            if not left or time.monotonic() >= deadline:
                break
            time.sleep(0.05)

        errs = self.thread_errors()
        names = [t.name for t in left]
        if in_flight:
            # the test already failed; report what else went wrong without masking it
            for e in errs:
                print_line(f"info: helper thread failed: {e}")
            if names:
                report_leftover_threads(names, THREAD_EXIT_WAIT)
            return
        if errs:
            msg = "failure in a client thread:\n" + "\n".join(errs)
            if names:
                msg += "\nalso: " + leftover_threads_message(names, THREAD_EXIT_WAIT)
            pytest.fail(msg)
        if names:
            pytest.fail(leftover_threads_message(names, THREAD_EXIT_WAIT))

    def LogSize(self):
        """The largest Raft state any server has persisted, in bytes."""
        logsize = 0
        for i in range(self.n):
            n = self.saved[i].RaftStateSize()
            if n > logsize:
                logsize = n
        return logsize

    def SnapshotSize(self):
        """The largest snapshot any server has persisted, in bytes."""
        snapshotsize = 0
        for i in range(self.n):
            n = self.saved[i].SnapshotSize()
            if n > snapshotsize:
                snapshotsize = n
        return snapshotsize

    def connectUnlocked(self, i, to):
        """Attach server i to the servers in `to`; caller holds self.mu."""
        # outgoing ends
        for j in range(len(to)):
            endname = self.endnames[i][to[j]]
            self.net.Enable(endname, True)
        # incoming ends
        for j in range(len(to)):
            endname = self.endnames[to[j]][i]
            self.net.Enable(endname, True)

    def connect(self, i, to):
        with self.mu:
            self.connectUnlocked(i, to)

    def disconnectUnlocked(self, i, from_):
        """Detach server i from the servers in from_; caller holds self.mu."""
        # outgoing ends
        for j in range(len(from_)):
            if self.endnames[i] is not None:
                endname = self.endnames[i][from_[j]]
                self.net.Enable(endname, False)
        # incoming ends (the Go guard tests endnames[j], not endnames[from[j]]; kept)
        for j in range(len(from_)):
            if self.endnames[j] is not None:
                endname = self.endnames[from_[j]][i]
                self.net.Enable(endname, False)

    def disconnect(self, i, from_):
        with self.mu:
            self.disconnectUnlocked(i, from_)

    def All(self):
        return list(range(self.n))

    @timeline.traced
    def ConnectAll(self):
        with self.mu:
            for i in range(self.n):
                self.connectUnlocked(i, self.All())

    @timeline.traced
    def partition(self, p1, p2):
        """Two groups, each fully connected inside and cut off from the other."""
        with self.mu:
            for i in range(len(p1)):
                self.disconnectUnlocked(p1[i], p2)
                self.connectUnlocked(p1[i], p1)
            for i in range(len(p2)):
                self.disconnectUnlocked(p2[i], p1)
                self.connectUnlocked(p2[i], p2)

    def makeClient(self, to):
        """A clerk with its own ends to every server, of which only `to` are enabled."""
        with self.mu:
            ends = [None] * self.n
            endnames = [None] * self.n
            for j in range(self.n):
                endnames[j] = randstring(20)
                ends[j] = _ClerkEnd(self.net.MakeEnd(endnames[j]), self)
                self.net.Connect(endnames[j], j)

            ck = MakeClerk(random_handles(ends))
            self.clerks[id(ck)] = (ck, endnames)
            self.nextClientId += 1
            self.ConnectClientUnlocked(ck, to)
            return ck

    def deleteClient(self, ck):
        # Go also os.Remove()s files named after the ends, a leftover with no effect
        with self.mu:
            self.clerks.pop(id(ck), None)

    def ConnectClientUnlocked(self, ck, to):
        """Caller holds self.mu."""
        endnames = self.clerks[id(ck)][1]
        for j in range(len(to)):
            s = endnames[to[j]]
            self.net.Enable(s, True)

    def ConnectClient(self, ck, to):
        with self.mu:
            self.ConnectClientUnlocked(ck, to)

    def DisconnectClientUnlocked(self, ck, from_):
        """Caller holds self.mu."""
        endnames = self.clerks[id(ck)][1]
        for j in range(len(from_)):
            s = endnames[from_[j]]
            self.net.Enable(s, False)

    def DisconnectClient(self, ck, from_):
        with self.mu:
            self.DisconnectClientUnlocked(ck, from_)

    @timeline.traced
    def ShutdownServer(self, i):
        """Crash server i: isolate it, keep a copy of its persisted state, kill it."""
        self.mu.acquire()
        try:
            self.disconnectUnlocked(i, self.All())

            # Take the server off the network before replacing its persister, so
            # it cannot answer a client for an op it persists in the old copy.
            self.net.DeleteServer(i)

            # A fresh persister holding the last saved state: the old instance
            # may keep writing to its own.
            if self.saved[i] is not None:
                self.saved[i] = self.saved[i].Copy()

            kv = self.kvservers[i]
            if kv is not None:
                self.mu.release()
                try:
                    kv.Kill()
                finally:
                    self.mu.acquire()
                self.kvservers[i] = None
        finally:
            self.mu.release()

    @timeline.traced
    def StartServer(self, i):
        """Start (or restart, after ShutdownServer) server i."""
        with self.mu:
            # fresh outgoing end names
            self.endnames[i] = [randstring(20) for _ in range(self.n)]

            # fresh ends
            ends = [None] * self.n
            for j in range(self.n):
                ends[j] = self.net.MakeEnd(self.endnames[i][j])
                self.net.Connect(self.endnames[i][j], j)
            timeline.owner(ends, i)

            # a fresh persister with a copy of the old state, so the old
            # instance cannot overwrite what the new one is given
            if self.saved[i] is not None:
                self.saved[i] = self.saved[i].Copy()
            else:
                self.saved[i] = MakePersister()

        self.kvservers[i] = StartKVServer(ends, i, self.saved[i], self.maxraftstate)

        kvsvc = labrpc.MakeService(self.kvservers[i])
        rfsvc = labrpc.MakeService(self.kvservers[i].rf)
        srv = labrpc.MakeServer()
        srv.AddService(kvsvc)
        srv.AddService(rfsvc)
        self.net.AddServer(i, srv)

    def Leader(self):
        with self.mu:
            for i in range(self.n):
                term, is_leader = self.kvservers[i].rf.GetState()
                timeline.state(i, term, is_leader)
                if is_leader:
                    return True, i
            return False, 0

    def make_partition(self):
        """Split the servers in two, with the current leader in the minority."""
        _, l = self.Leader()
        p1 = [0] * (self.n // 2 + 1)
        p2 = [0] * (self.n // 2)
        j = 0
        for i in range(self.n):
            if i != l:
                if j < len(p1):
                    p1[j] = i
                else:
                    p2[j - len(p1)] = i
                j += 1
        p2[len(p2) - 1] = l
        return p1, p2

    def rpcTotal(self):
        return self.net.GetTotalCount()

    @timeline.traced
    def begin(self, description):
        """Start a test section: print its title, reset the statistics."""
        print_line(f"{description} ...")
        self.t0 = time.monotonic()
        self.rpcs0 = self.rpcTotal()
        with self._ops_mu:
            self.ops = 0

    def op(self):
        with self._ops_mu:
            self.ops += 1

    @timeline.traced
    def end(self):
        """End a test section that did not fail: print the Passed line."""
        self.checkTimeout()
        self.checkThreadErrors()
        if not self.failed():
            t = time.monotonic() - self.t0  # seconds since begin()
            npeers = self.n  # servers, each with a Raft peer
            nrpc = self.rpcTotal() - self.rpcs0  # RPCs sent since begin()
            with self._ops_mu:
                ops = self.ops  # logged clerk operations
            print_line("  ... Passed --" + "  %4.1f  %d %5d %4d" % (t, npeers, nrpc, ops))


def make_config(n, unreliable, maxraftstate):
    global _ncpu_done
    with _ncpu_once:
        if not _ncpu_done:
            _ncpu_done = True
            if (os.cpu_count() or 1) < 2:
                print_line("warning: only one CPU, which may conceal locking bugs")
            random.seed(int.from_bytes(os.urandom(8), "big") & ((1 << 62) - 1))
    # Go also sets GOMAXPROCS(4); CPython has no counterpart
    cfg = config()
    cfg._threads0 = set(threading.enumerate())
    cfg.net = labrpc.MakeNetwork()
    cfg.n = n
    cfg.kvservers = [None] * cfg.n
    cfg.saved = [None] * cfg.n
    cfg.endnames = [None] * cfg.n
    cfg.clerks = {}
    cfg.nextClientId = cfg.n + 1000  # clerk numbers begin well above any server number
    cfg.maxraftstate = maxraftstate
    cfg.start = time.monotonic()
    threading.Thread(target=cfg._watchdog, name="kvtest-watchdog", daemon=True).start()

    try:
        # start every server
        for i in range(cfg.n):
            cfg.StartServer(i)

        cfg.ConnectAll()

        cfg.net.Reliable(not unreliable)
    except BaseException:
        cfg.cleanup()
        raise

    return cfg
