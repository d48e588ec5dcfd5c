"""Raft test harness: twin of raft/config.go.

A config owns a labrpc network and n Raft peers, each with its own persister,
apply channel and applier thread that records what the peer applied.  The
helpers keep the Go names and numbers (checkOneLeader, one, crash1, ...).

Go's log.Fatalf in an applier stops the whole test binary; here an applier
records the first error and ends, and the test fails with that message at its
next nCommitted/one/wait/end/cleanup.  A Go test's `defer cfg.cleanup()` is a
try/finally around the test body; cleanup also checks that every thread the
test started has ended.
"""

import base64
import io
import os
import random
import secrets
import sys
import threading
import time
import traceback

import pytest

import timeline
from labgob import DecodeError, NewDecoder, NewEncoder
from labrpc import MakeNetwork, MakeServer, MakeService
from persister import MakePersister
from raft import Chan, Make
from raft.util import print_line
from tests.gotest import leftover_threads_message, report_leftover_threads

SnapShotInterval = 10

# How long cleanup waits for the test's threads to end, and crash1 for an old applier.
THREAD_EXIT_SECONDS = 5.0


def randstring(n):
    b = os.urandom(2 * n)
    s = base64.urlsafe_b64encode(b).decode("ascii")
    return s[0:n]


def makeSeed():
    return secrets.randbelow(1 << 62)


_ncpu_once = threading.Lock()
_ncpu_done = False


def _once_per_process():
    global _ncpu_done
    with _ncpu_once:
        if _ncpu_done:
            return
        _ncpu_done = True
        if (os.cpu_count() or 1) < 2:
            print_line("warning: only one CPU, which may conceal locking bugs")
        random.seed(makeSeed())


class config:
    def __init__(self, n):
        self.mu = threading.Lock()
        self.finished = threading.Event()
        self.net = MakeNetwork()
        self.n = n
        self.rafts = [None] * n
        self.applyErr = [""] * n  # from apply channel readers
        self.connected = [False] * n  # whether each server is on the net
        self.saved = [None] * n
        self.endnames = [None] * n  # the port file names each sends to
        self.logs = [None] * n  # copy of each server's committed entries
        self.lastApplied = [0] * n
        self.start = time.monotonic()  # time at which make_config() was called
        # begin()/end() statistics
        self.t0 = self.start  # time at which the test called cfg.begin()
        self.rpcs0 = 0  # rpcTotal() at start of test
        self.cmds0 = 0  # number of agreements
        self.bytes0 = 0
        self.maxIndex = 0
        self.maxIndex0 = 0
        # No Go twin: each peer's apply channel and applier thread, so that
        # crash1/cleanup can close the one and wait for the other.
        self.applyChs = [None] * n
        self.applierThreads = [None] * n
        # No Go twin: the first failure seen in a background thread (applier or
        # a test's goroutine), reported by the test's main thread.
        self.failure = None
        self._failureMu = threading.Lock()  # not mu: ingestSnap fails while holding mu
        self._threads0 = set(threading.enumerate())

    # ---- failures found outside the test's main thread ----

    def record_failure(self, msg):
        """Remember the first failure found in a background thread."""
        with self._failureMu:
            if self.failure is None:
                self.failure = msg
                timeline.failure(msg)
        print_line(msg, file=sys.stderr)

    def check_failure(self):
        """Fail the running test if a background thread has found an error."""
        msg = self.failure
        if msg is not None:
            pytest.fail(msg)

    def start_thread(self, target, *args, name=None):
        """Run target(*args) in a daemon thread (a goroutine): a failure or an
        exception in it is recorded, so that the test fails."""

        def run():
            try:
                target(*args)
            except pytest.fail.Exception as e:
                self.record_failure(e.msg)
            except BaseException as e:
                tb = traceback.format_exc()
                self.record_failure(
                    f"{threading.current_thread().name}: {type(e).__name__}: {e}\n{tb}"
                )

        th = threading.Thread(target=run, name=name, daemon=True)
        th.start()
        return th

    def checkFinished(self):
        return self.finished.is_set()

    # ---- servers ----

    @timeline.traced
    def crash1(self, i):
        """Shut down a Raft server but save its persistent state."""
        self.disconnect(i)
        self.net.DeleteServer(i)  # disable client connections to the server.

        self.mu.acquire()
        try:
            # a fresh persister, in case the old instance keeps writing to the
            # old one; it starts with the old one's content, so Make() always
            # gets the last persisted state.
            if self.saved[i] is not None:
                self.saved[i] = self.saved[i].Copy()

            rf = self.rafts[i]
            if rf is not None:
                ch, th = self.applyChs[i], self.applierThreads[i]
                self.mu.release()
                try:
                    # Python cannot leak a blocked applier like Go: close its
                    # channel so it ends, and let it finish its current message
                    # before start1 resets this server's applier state.  Closing
                    # first also frees a Raft blocked sending while holding the
                    # lock that Kill() may need.
                    ch.close()
                    rf.Kill()
                    if th is not None and th is not threading.current_thread():
                        th.join(THREAD_EXIT_SECONDS)
                finally:
                    self.mu.acquire()
                self.rafts[i] = None

            if self.saved[i] is not None:
                raftlog = self.saved[i].ReadRaftState()
                snapshot = self.saved[i].ReadSnapshot()
                self.saved[i] = MakePersister()
                self.saved[i].Save(raftlog, snapshot)
        finally:
            self.mu.release()

    def checkLogs(self, i, m):
        err_msg = ""
        v = m.Command
        for j in range(len(self.logs)):
            if m.CommandIndex in self.logs[j] and self.logs[j][m.CommandIndex] != v:
                old = self.logs[j][m.CommandIndex]
                print_line(f"{i}: log {self.logs[i]}; server {self.logs[j]}", file=sys.stderr)
                # another server has already committed a different value here.
                err_msg = (
                    f"commit index={m.CommandIndex} server={i} {m.Command} != server={j} {old}"
                )
        prevok = (m.CommandIndex - 1) in self.logs[i]
        self.logs[i][m.CommandIndex] = v
        if m.CommandIndex > self.maxIndex:
            self.maxIndex = m.CommandIndex
        return err_msg, prevok

    def _applyError(self, i, err_msg):
        self.record_failure(f"apply error: {err_msg}")
        self.applyErr[i] = err_msg

    def applier(self, i, applyCh):
        """Read the messages of server i's apply channel and check that they
        agree with what the other servers applied."""
        for m in applyCh:
            if not m.CommandValid:
                continue  # ignore other types of ApplyMsg
            with self.mu:
                err_msg, prevok = self.checkLogs(i, m)
            timeline.applied(i, m.CommandIndex)
            if m.CommandIndex > 1 and not prevok:
                err_msg = f"server {i} apply out of order {m.CommandIndex}"
            if err_msg != "":
                # Go's log.Fatalf ends the test binary; record it and stop reading.
                self._applyError(i, err_msg)
                return

    def ingestSnap(self, i, snapshot, index):
        """Install a snapshot made by applierSnap; returns "" or an error."""
        if snapshot is None:
            self._applyError(i, "nil snapshot")
            return "nil snapshot"
        d = NewDecoder(io.BytesIO(snapshot))
        try:
            lastIncludedIndex = d.Decode()
            xlog = d.Decode()
        except DecodeError:
            lastIncludedIndex, xlog = None, None
        if not isinstance(lastIncludedIndex, int) or not isinstance(xlog, list):
            self._applyError(i, "snapshot decode error")
            return "snapshot Decode() error"
        if index != -1 and index != lastIncludedIndex:
            return f"server {i} snapshot doesn't match m.SnapshotIndex"
        self.logs[i] = {}
        for j in range(len(xlog)):
            self.logs[i][j] = xlog[j]
        self.lastApplied[i] = lastIncludedIndex
        return ""

    def applierSnap(self, i, applyCh):
        """Like applier, and every SnapShotInterval entries hand Raft a snapshot."""
        with self.mu:
            rf = self.rafts[i]
        if rf is None:
            return

        for m in applyCh:
            err_msg = ""
            if m.SnapshotValid:
                with self.mu:
                    err_msg = self.ingestSnap(i, m.Snapshot, m.SnapshotIndex)
                timeline.applied(i, m.SnapshotIndex, snapshot=True)
            elif m.CommandValid:
                if m.CommandIndex != self.lastApplied[i] + 1:
                    err_msg = (
                        f"server {i} apply out of order, expected index "
                        f"{self.lastApplied[i] + 1}, got {m.CommandIndex}"
                    )

                if err_msg == "":
                    with self.mu:
                        err_msg, prevok = self.checkLogs(i, m)
                    if m.CommandIndex > 1 and not prevok:
                        err_msg = f"server {i} apply out of order {m.CommandIndex}"

                with self.mu:
                    self.lastApplied[i] = m.CommandIndex
                timeline.applied(i, m.CommandIndex)

                if (m.CommandIndex + 1) % SnapShotInterval == 0:
                    w = io.BytesIO()
                    e = NewEncoder(w)
                    e.Encode(m.CommandIndex)
                    with self.mu:
                        xlog = [self.logs[i].get(j) for j in range(m.CommandIndex + 1)]
                    e.Encode(xlog)
                    rf.Snapshot(m.CommandIndex, w.getvalue())
            # other types of ApplyMsg are ignored.
            if err_msg != "":
                # Go's log.Fatalf ends the test binary; record it and stop reading.
                self._applyError(i, err_msg)
                return

    @timeline.traced
    def start1(self, i, applier):
        """Start or restart Raft server i; an existing one is crashed first.
        Fresh end names and a fresh persister isolate the old instance."""
        self.crash1(i)

        # fresh outgoing end names, so the crashed instance's ends cannot send.
        self.endnames[i] = [randstring(20) for _ in range(self.n)]

        ends = []
        for j in range(self.n):
            ends.append(self.net.MakeEnd(self.endnames[i][j]))
            self.net.Connect(self.endnames[i][j], j)
        timeline.owner(ends, i)

        with self.mu:
            self.lastApplied[i] = 0

            # a fresh persister, so the old instance cannot overwrite the new
            # one's state; it starts with the last persisted state.
            if self.saved[i] is not None:
                self.saved[i] = self.saved[i].Copy()

                snapshot = self.saved[i].ReadSnapshot()
                if snapshot is not None and len(snapshot) > 0:
                    # act like the key/value server and install it now.
                    err = self.ingestSnap(i, snapshot, -1)
                    if err != "":
                        pytest.fail(err)
            else:
                self.saved[i] = MakePersister()

        applyCh = Chan()

        rf = Make(ends, i, self.saved[i], applyCh)

        with self.mu:
            self.rafts[i] = rf
            self.applyChs[i] = applyCh

        # the applier is a bound method: applier or applierSnap, of this config.
        th = self.start_thread(applier, i, applyCh, name=f"config-applier-{i}")
        with self.mu:
            self.applierThreads[i] = th

        svc = MakeService(rf)
        srv = MakeServer()
        srv.AddService(svc)
        self.net.AddServer(i, srv)

    def checkTimeout(self):
        # a real-time limit of two minutes on each test
        if time.monotonic() - self.start > 120:
            pytest.fail("test took longer than 120 seconds")

    @timeline.traced
    def cleanup(self):
        """Shut everything down (Go: `defer cfg.cleanup()`).  When the test is
        already failing, report nothing more."""
        failing = sys.exc_info()[0] is not None
        self.finished.set()
        # Channels first: a Raft blocked sending on applyCh while holding its lock
        # (a deadlock the test may have failed on) lets go, so Kill() cannot hang.
        for ch in self.applyChs:
            if ch is not None:
                ch.close()
        for i in range(len(self.rafts)):
            rf = self.rafts[i]
            if rf is not None:
                rf.Kill()
        self.net.Cleanup()

        leftover = self._waitThreads(THREAD_EXIT_SECONDS)
        if failing:
            if leftover:
                report_leftover_threads(leftover, THREAD_EXIT_SECONDS)
            return
        try:
            self.check_failure()
            self.checkTimeout()
        except BaseException:
            if leftover:
                report_leftover_threads(leftover, THREAD_EXIT_SECONDS)
            raise
        if leftover:
            pytest.fail(leftover_threads_message(leftover, THREAD_EXIT_SECONDS))

    def _waitThreads(self, timeout):
        """Names of the threads started since make_config still alive after timeout."""
        me = threading.current_thread()
        deadline = time.monotonic() + timeout
        while True:
            alive = [
                t for t in threading.enumerate()
                if t not in self._threads0 and t is not me and t.is_alive()
            ]
            if not alive or time.monotonic() >= deadline:
                return sorted(t.name for t in alive)
            time.sleep(0.05)

    # ---- network ----

    @timeline.traced
    def connect(self, i):
        """Attach server i to the net."""
        self.connected[i] = True

        # outgoing ClientEnds
        for j in range(self.n):
            if self.connected[j]:
                endname = self.endnames[i][j]
                self.net.Enable(endname, True)

        # incoming ClientEnds
        for j in range(self.n):
            if self.connected[j]:
                endname = self.endnames[j][i]
                self.net.Enable(endname, True)

    @timeline.traced
    def disconnect(self, i):
        """Detach server i from the net."""
        self.connected[i] = False

        # outgoing ClientEnds
        for j in range(self.n):
            if self.endnames[i] is not None:
                endname = self.endnames[i][j]
                self.net.Enable(endname, False)

        # incoming ClientEnds
        for j in range(self.n):
            if self.endnames[j] is not None:
                endname = self.endnames[j][i]
                self.net.Enable(endname, False)

    def rpcCount(self, server):
        return self.net.GetCount(server)

    def rpcTotal(self):
        return self.net.GetTotalCount()

    @timeline.traced
    def setunreliable(self, unrel):
        self.net.Reliable(not unrel)

    def bytesTotal(self):
        return self.net.GetTotalBytes()

    @timeline.traced
    def setlongreordering(self, longrel):
        self.net.LongReordering(longrel)

    # ---- checks ----

    @timeline.traced
    def checkOneLeader(self):
        """Check that one connected server thinks it is the leader and that no
        other does; retry a few times in case re-elections are needed."""
        for iters in range(10):
            ms = 450 + random.randrange(100)
            time.sleep(ms / 1000)

            leaders = {}
            for i in range(self.n):
                if self.connected[i]:
                    term, leader = self.rafts[i].GetState()
                    timeline.state(i, term, leader)
                    if leader:
                        leaders.setdefault(term, []).append(i)

            lastTermWithLeader = -1
            for term, termLeaders in leaders.items():
                if len(termLeaders) > 1:
                    pytest.fail(f"term {term} has {len(termLeaders)} (>1) leaders")
                if term > lastTermWithLeader:
                    lastTermWithLeader = term

            if len(leaders) != 0:
                return leaders[lastTermWithLeader][0]
        pytest.fail("expected one leader, got none")

    @timeline.traced
    def checkTerms(self):
        """Check that all connected servers agree on the term."""
        term = -1
        for i in range(self.n):
            if self.connected[i]:
                xterm, xleader = self.rafts[i].GetState()
                timeline.state(i, xterm, xleader)
                if term == -1:
                    term = xterm
                elif term != xterm:
                    pytest.fail("servers disagree on term")
        return term

    @timeline.traced
    def checkNoLeader(self):
        """Check that no connected server thinks it is the leader."""
        for i in range(self.n):
            if self.connected[i]:
                term, is_leader = self.rafts[i].GetState()
                timeline.state(i, term, is_leader)
                if is_leader:
                    pytest.fail(
                        f"expected no leader among connected servers, but {i} claims to be leader",
                    )

    def nCommitted(self, index):
        """How many servers think the entry at index is committed, and its value."""
        count = 0
        cmd = None
        for i in range(len(self.rafts)):
            # Go checks applyErr[i] here; check_failure reports the first
            # error any applier (or other thread) recorded.
            self.check_failure()

            with self.mu:
                ok = index in self.logs[i]
                cmd1 = self.logs[i].get(index)

            if ok:
                if count > 0 and cmd != cmd1:
                    pytest.fail(
                        f"committed values do not match: index {index}, {cmd}, {cmd1}",
                    )
                count += 1
                cmd = cmd1
        return count, cmd

    @timeline.traced
    def wait(self, index, n, startTerm):
        """Wait, but not forever, for at least n servers to commit index."""
        to = 0.010
        for iters in range(30):
            nd, _ = self.nCommitted(index)
            if nd >= n:
                break
            time.sleep(to)
            if to < 1.0:
                to *= 2
            if startTerm > -1:
                for ri, r in enumerate(self.rafts):
                    t, leader = r.GetState()
                    timeline.state(ri, t, leader)
                    if t > startTerm:
                        # someone has moved on; we can no longer be sure to "win".
                        return -1
        nd, cmd = self.nCommitted(index)
        if nd < n:
            pytest.fail(f"only {nd} decided for index {index}; wanted {n}")
        return cmd

    @timeline.traced
    def one(self, cmd, expectedServers, retry):
        """A complete agreement on cmd; returns its index.

        The first server tried may not be the leader, so it may have to submit
        again; it gives up after about 10 seconds.  It checks agreement through
        nCommitted, as do the applier threads.  With retry, cmd may be submitted
        several times in case a leader fails right after Start(); without it,
        Start() is called only once, which keeps the early 2B tests simple.
        """
        t0 = time.monotonic()
        starts = 0
        while time.monotonic() - t0 < 10 and not self.checkFinished():
            self.check_failure()
            # try each server in turn, maybe one is the leader.
            index = -1
            for si in range(self.n):
                starts = (starts + 1) % self.n
                rf = None
                with self.mu:
                    if self.connected[starts]:
                        rf = self.rafts[starts]
                if rf is not None:
                    index1, _, ok = rf.Start(cmd)
                    timeline.start(starts, cmd, index1, ok)
                    if ok:
                        index = index1
                        break

            if index != -1:
                # a server claims to lead and took our command: wait a while
                # for agreement.
                t1 = time.monotonic()
                while time.monotonic() - t1 < 2:
                    nd, cmd1 = self.nCommitted(index)
                    if nd > 0 and nd >= expectedServers:
                        # committed, and it is the command we submitted.
                        if cmd1 == cmd:
                            return index
                    time.sleep(0.020)
                if not retry:
                    pytest.fail(f"one({cmd}) failed to reach agreement")
            else:
                time.sleep(0.050)
        if not self.checkFinished():
            pytest.fail(f"one({cmd}) failed to reach agreement")
        return -1

    # ---- begin/end ----

    @timeline.traced
    def begin(self, description):
        """Start a test: print its title and reset the statistics."""
        print_line(f"{description} ...")
        self.t0 = time.monotonic()
        self.rpcs0 = self.rpcTotal()
        self.bytes0 = self.bytesTotal()
        self.cmds0 = 0
        self.maxIndex0 = self.maxIndex

    def end(self):
        """End a test that did not fail: print Passed and some numbers."""
        self.checkTimeout()
        self.check_failure()
        with self.mu:
            t = time.monotonic() - self.t0  # real time
            npeers = self.n  # number of Raft peers
            nrpc = self.rpcTotal() - self.rpcs0  # number of RPC sends
            nbytes = self.bytesTotal() - self.bytes0  # number of bytes
            ncmds = self.maxIndex - self.maxIndex0  # number of Raft agreements reported

        print_line("  ... Passed --" + "  %4.1f  %d %4d %7d %4d" % (t, npeers, nrpc, nbytes, ncmds))

    def LogSize(self):
        """Largest Raft state (log included, snapshot excluded) over all servers."""
        logsize = 0
        for i in range(self.n):
            n = self.saved[i].RaftStateSize()
            if n > logsize:
                logsize = n
        return logsize


def make_config(n, unreliable, snapshot):
    _once_per_process()
    # Go also sets GOMAXPROCS(4) here; Python threads have no such setting.
    cfg = config(n)
    try:
        cfg.setunreliable(unreliable)

        cfg.net.LongDelays(True)

        applier = cfg.applier
        if snapshot:
            applier = cfg.applierSnap
        # create a full set of Rafts.
        for i in range(cfg.n):
            cfg.logs[i] = {}
            cfg.start1(i, applier)

        # connect everyone
        for i in range(cfg.n):
            cfg.connect(i)
    except BaseException:
        cfg.cleanup()  # the test's try/finally has not started yet
        raise
    return cfg
