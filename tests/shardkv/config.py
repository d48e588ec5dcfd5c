"""Test harness for the sharded key/value service: the Python twin of shardkv/config.go.

A config owns a simulated network, 3 shard controllers, 3 groups of n
ShardKV servers (gids 100, 101, 102, each server with its Raft), their
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
import shardctrler
import timeline
from persister import MakePersister
from raft.util import print_line
from tests.gotest import leftover_threads_message, report_leftover_threads
from shardkv import MakeClerk, StartServer

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

    A Go test binary exits and takes stuck clerk goroutines with it (several 4B
    tests leave clerks retrying forever); pytest runs every test in one process,
    so a clerk still retrying after cleanup has to be stopped. It derives from
    pytest's failure outcome (a BaseException) so a clerk's `except Exception`
    cannot swallow it.
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


class group:
    def __init__(self):
        self.gid = 0
        self.servers = []
        self.saved = []
        self.endnames = []  # endnames[i][j]: server i's end to server j of the group
        self.mendnames = []  # mendnames[i][j]: server i's end to controller j


_ncpu_once = threading.Lock()
_ncpu_done = False


class config:
    def __init__(self):
        self.mu = threading.Lock()
        self.net = None
        self.start = 0.0  # when make_config() ran (for the time limit)

        self.nctrlers = 0
        self.ctrlerservers = []
        self.mck = None

        self.ngroups = 0
        self.n = 0  # servers per k/v group
        self.groups = []

        self.clerks = {}  # id(ck) -> (ck, endnames); Clerk need not be hashable
        self.nextClientId = 0
        self.maxraftstate = 0
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
        if getattr(exc, "_shardkv_recorded", False):
            return
        try:
            exc._shardkv_recorded = True
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
                # a clerk left blocked by the test (Go leaks its goroutine) is fine
                if not self._cleaned_up:
                    self.record(e)
            except BaseException as e:  # any escape from a helper fails the test
                self.record(e)

        th = threading.Thread(target=body, name=f"skvtest-{getattr(fn, '__name__', 'go')}", daemon=True)
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

    def recv(self, q, timeout=None):
        """Receive from a channel (queue) like `<-ch`, bounded by the test time limit.
        With a timeout, raise queue.Empty when nothing arrived in time (a select
        on the channel and time.After)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            wait = 0.1
            if deadline is not None:
                wait = min(wait, deadline - time.monotonic())
                if wait <= 0:
                    raise queue.Empty
            try:
                return q.get(timeout=wait)
            except queue.Empty:
                pass
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
        # enforce a two minute real-time limit on each test
        if not self.failed() and time.monotonic() - self.start > TEST_TIME_LIMIT:
            pytest.fail("test took longer than 120 seconds")

    @timeline.traced
    def cleanup(self):
        in_flight = sys.exc_info()[0] is not None
        for gi in range(self.ngroups):
            if self.groups[gi] is not None:  # None only if make_config failed half-way
                self.ShutdownGroup(gi)
        for i in range(self.nctrlers):
            if self.ctrlerservers[i] is not None:  # None only if make_config failed half-way
                self.ctrlerservers[i].Kill()
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

    def checklogs(self):
        """Check that no server's log is too big (and no snapshot exists with -1)."""
        for gi in range(self.ngroups):
            for i in range(self.n):
                raft = self.groups[gi].saved[i].RaftStateSize()
                snap = len(self.groups[gi].saved[i].ReadSnapshot())
                if self.maxraftstate >= 0 and raft > 8 * self.maxraftstate:
                    pytest.fail(f"persister.RaftStateSize() {raft}, but maxraftstate {self.maxraftstate}")
                if self.maxraftstate < 0 and snap > 0:
                    pytest.fail("maxraftstate is -1, but snapshot is non-empty!")

    def ctrlername(self, i):
        """The controller's server name for labrpc."""
        return "ctrler" + str(i)

    def servername(self, gid, i):
        """The labrpc name of the i'th server of group gid."""
        return "server-" + str(gid) + "-" + str(i)

    def _make_end(self, servername, clerk):
        """The make_end handed to clerks and servers: a new end on every call, as in Go."""
        name = randstring(20)
        end = self.net.MakeEnd(name)
        self.net.Connect(name, servername)
        self.net.Enable(name, True)
        # A clerk may be left retrying by the test; a server stops its own threads
        # in Kill(), which the thread check after cleanup holds it to.
        return _ClerkEnd(end, self) if clerk else end

    def makeClient(self):
        with self.mu:
            # ClientEnds to talk to the controller service.
            ends = [None] * self.nctrlers
            endnames = [None] * self.n  # sized n but indexed by controller, as in Go (n == nctrlers)
            for j in range(self.nctrlers):
                endnames[j] = randstring(20)
                ends[j] = _ClerkEnd(self.net.MakeEnd(endnames[j]), self)
                self.net.Connect(endnames[j], self.ctrlername(j))
                self.net.Enable(endnames[j], True)

            def make_end(servername):
                if self._abandon_reason is not None:
                    raise ClerkAbandoned(self._abandon_reason)
                return self._make_end(servername, True)

            ck = MakeClerk(ends, make_end)
            self.clerks[id(ck)] = (ck, endnames)
            self.nextClientId += 1
            return ck

    def deleteClient(self, ck):
        # Go also os.Remove()s files named after the ends, a leftover with no effect
        with self.mu:
            self.clerks.pop(id(ck), None)

    @timeline.traced
    def ShutdownServer(self, gi, i):
        """Shut down the i'th server of the gi'th group, by isolating it."""
        self.mu.acquire()
        try:
            gg = self.groups[gi]

            if gg.endnames[i] is None:
                return  # never started (make_config failed half-way)

            # prevent this server from sending
            for j in range(len(gg.servers)):
                name = gg.endnames[i][j]
                self.net.Enable(name, False)
            for j in range(len(gg.mendnames[i])):
                name = gg.mendnames[i][j]
                self.net.Enable(name, False)
            # Ends the server made through make_end stay enabled, as in Go.

            # Take the server off the network before replacing its persister, so
            # it cannot answer a client for an op it persists in the old copy.
            self.net.DeleteServer(self.servername(gg.gid, i))

            # A fresh persister holding the last saved state: the old instance
            # may keep writing to its own.
            if gg.saved[i] is not None:
                gg.saved[i] = gg.saved[i].Copy()

            kv = gg.servers[i]
            if kv is not None:
                self.mu.release()
                try:
                    kv.Kill()
                finally:
                    self.mu.acquire()
                gg.servers[i] = None
        finally:
            self.mu.release()

    def ShutdownGroup(self, gi):
        for i in range(self.n):
            self.ShutdownServer(gi, i)

    @timeline.traced
    def StartServer(self, gi, i):
        """Start (or restart) the i'th server of the gi'th group."""
        with self.mu:
            gg = self.groups[gi]

            # a fresh set of outgoing end names to the other servers of the group,
            # and the connections to them
            gg.endnames[i] = [randstring(20) for _ in range(self.n)]
            ends = [None] * self.n
            for j in range(self.n):
                ends[j] = self.net.MakeEnd(gg.endnames[i][j])
                self.net.Connect(gg.endnames[i][j], self.servername(gg.gid, j))
                self.net.Enable(gg.endnames[i][j], True)

            # ends to talk to the controller service
            mends = [None] * self.nctrlers
            gg.mendnames[i] = [None] * self.nctrlers
            for j in range(self.nctrlers):
                gg.mendnames[i][j] = randstring(20)
                mends[j] = self.net.MakeEnd(gg.mendnames[i][j])
                self.net.Connect(gg.mendnames[i][j], self.ctrlername(j))
                self.net.Enable(gg.mendnames[i][j], True)
            timeline.owner(ends + mends, self.servername(gg.gid, i))

            # a fresh persister with a copy of the old state, so the old
            # instance cannot overwrite what the new one is given
            if gg.saved[i] is not None:
                gg.saved[i] = gg.saved[i].Copy()
            else:
                gg.saved[i] = MakePersister()

        gg.servers[i] = StartServer(
            ends, i, gg.saved[i], self.maxraftstate, gg.gid, mends,
            lambda servername: self._make_end(servername, False),
        )

        kvsvc = labrpc.MakeService(gg.servers[i])
        rfsvc = labrpc.MakeService(gg.servers[i].rf)
        srv = labrpc.MakeServer()
        srv.AddService(kvsvc)
        srv.AddService(rfsvc)
        self.net.AddServer(self.servername(gg.gid, i), srv)

    def StartGroup(self, gi):
        for i in range(self.n):
            self.StartServer(gi, i)

    @timeline.traced
    def StartCtrlerserver(self, i):
        # ClientEnds to talk to the other controller replicas
        ends = [None] * self.nctrlers
        for j in range(self.nctrlers):
            endname = randstring(20)
            ends[j] = self.net.MakeEnd(endname)
            self.net.Connect(endname, self.ctrlername(j))
            self.net.Enable(endname, True)
        timeline.owner(ends, self.ctrlername(i))

        p = MakePersister()

        self.ctrlerservers[i] = shardctrler.StartServer(ends, i, p)

        msvc = labrpc.MakeService(self.ctrlerservers[i])
        rfsvc = labrpc.MakeService(self.ctrlerservers[i].Raft())
        srv = labrpc.MakeServer()
        srv.AddService(msvc)
        srv.AddService(rfsvc)
        self.net.AddServer(self.ctrlername(i), srv)

    def shardclerk(self):
        # ClientEnds to talk to the controller service (not shuffled, as in Go)
        ends = [None] * self.nctrlers
        for j in range(self.nctrlers):
            name = randstring(20)
            ends[j] = _ClerkEnd(self.net.MakeEnd(name), self)
            self.net.Connect(name, self.ctrlername(j))
            self.net.Enable(name, True)

        return shardctrler.MakeClerk(ends)

    def join(self, gi):
        """Tell the controller that a group is joining (gi is a group index, not a gid)."""
        self.joinm([gi])

    @timeline.traced
    def joinm(self, gis):
        m = {}
        for g in gis:
            gid = self.groups[g].gid
            m[gid] = [self.servername(gid, i) for i in range(self.n)]
        self.mck.Join(m)

    def leave(self, gi):
        """Tell the controller that a group is leaving."""
        self.leavem([gi])

    @timeline.traced
    def leavem(self, gis):
        gids = [self.groups[g].gid for g in gis]
        self.mck.Leave(gids)


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
    cfg.maxraftstate = maxraftstate
    cfg.net = labrpc.MakeNetwork()
    cfg.start = time.monotonic()
    threading.Thread(target=cfg._watchdog, name="skvtest-watchdog", daemon=True).start()

    try:
        # controller
        cfg.nctrlers = 3
        cfg.ctrlerservers = [None] * cfg.nctrlers
        for i in range(cfg.nctrlers):
            cfg.StartCtrlerserver(i)
        cfg.mck = cfg.shardclerk()

        cfg.ngroups = 3
        cfg.groups = [None] * cfg.ngroups
        cfg.n = n
        for gi in range(cfg.ngroups):
            gg = group()
            cfg.groups[gi] = gg
            gg.gid = 100 + gi
            gg.servers = [None] * cfg.n
            gg.saved = [None] * cfg.n
            gg.endnames = [None] * cfg.n
            gg.mendnames = [None] * cfg.nctrlers  # sized by nctrlers, as in Go (n == nctrlers)
            for i in range(cfg.n):
                cfg.StartServer(gi, i)

        cfg.clerks = {}
        cfg.nextClientId = cfg.n + 1000  # client ids start 1000 above the highest server id

        cfg.net.Reliable(not unreliable)
    except BaseException:
        cfg.cleanup()
        raise

    return cfg
