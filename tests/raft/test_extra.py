"""Extra Raft tests: the classic bugs Go's suite lets through (marker `extra`).

Go's lab does not run these.  Each drives one scenario from the Raft
students' guide that the 28 Go tests reach rarely or never: a vote forgotten
across a restart, a stale leader deaf to a higher term, Figure 8, a log
truncated by a late duplicate, an entry lost when its acknowledging followers
restart, a follower that does not reset its timer on granting a vote, and
heartbeats slower than the election timeout.  They are black-box: they use
only what the Go tests use (Make, Start, GetState, Kill and Snapshot, the
apply channel, through tests/raft/config.py), the persister, and labrpc (its
switches, and an observer and a nemesis of its own: labrpc/nemesis.py).  No
field of a student's Raft or RPC is read.

Every failure names the rule of Figure 2 that was broken.  The calm-period
checks (no term change without failures, one election and no second) need
an exact clock: they fail only under --sim; in real time they run the same
scenario and print a warning, as Go's TestInitialElection2A does, since a
loaded machine delays heartbeats.  Names start with TestExtra, so -k 2A ...
-k 2D do not select them; run them with -m extra (make test-extra).
"""

import contextlib
import queue
import random
import threading
import time

import pytest

from raft.util import print_line

from .config import make_config

EXTRA = pytest.mark.extra

RaftElectionTimeout = 1.0  # seconds: the Go tests' allowance for an election

RESTART_AFTER_VOTE = 0.020  # seconds from a RequestVote's reply arriving to the voter's restart
POLL = 0.002  # seconds between the monitor's looks at every peer


# ---------------------------------------------------------------- helpers


@contextlib.contextmanager
def figure2(rule):
    """A failure inside, the harness's own checks included, says which rule of
    Figure 2 the scenario exercises."""
    try:
        yield
    except pytest.fail.Exception as e:
        if "Figure 2" in str(e.msg):
            raise
        # from None: the report shows this message alone, not the chain
        raise pytest.fail.Exception(f"{e.msg}\n  -- {rule}", pytrace=False) from None


@contextlib.contextmanager
def extra_test(servers, title, rule):
    """A test's config (reliable, no snapshots) and its Go-style begin, end and cleanup.
    Yields (cfg, keep): keep(helper) stops the helper thread before cleanup.  The
    network's observer and nemesis end with the test, and a failure names `rule`."""
    cfg = make_config(servers, False, False)
    helpers = []

    def keep(helper):
        helpers.append(helper)
        return helper

    try:
        cfg.begin(title)
        with figure2(rule):
            yield cfg, keep
            cfg.end()
    finally:
        cfg.net.Observe(None)
        cfg.net.DuplicateLate(False)
        for helper in helpers:
            helper.stop()
        cfg.cleanup()


def under_sim():
    from sim import patches

    return patches.world() is not None


def calm_fail(message):
    """A check that needs an exact clock failed: a failure under --sim, a warning in real time."""
    if under_sim():
        pytest.fail(message, pytrace=False)
    print_line(f"warning: {message} (a failure under --sim; real time on a loaded machine may delay heartbeats)")


def cmd():
    return random.getrandbits(31)


def set_link(cfg, i, j, on):
    """Enable or disable server i's end to server j (one direction)."""
    cfg.net.Enable(cfg.endnames[i][j], on)


def sender_of(cfg, endname):
    """The server whose end this is (its current incarnation), or None."""
    for i, names in enumerate(cfg.endnames):
        if names is not None and endname in names:
            return i
    return None


def restart(cfg, i):
    """Crash server i and start it again from its persisted state, connected."""
    cfg.start1(i, cfg.applier)
    cfg.connect(i)


def applied(cfg, i, index):
    with cfg.mu:
        return index in cfg.logs[i]


def wait_leader(cfg, among, above=0, timeout=5.0):
    """The first of `among` seen leading a term above `above` (polled), with
    that term; fails after timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for i in among:
            rf = cfg.rafts[i]
            if rf is not None:
                term, leader = rf.GetState()
                if leader and term > above:
                    return i, term
        time.sleep(0.010)
    pytest.fail(f"no leader among servers {sorted(among)} within {timeout:.0f} s")


class Restarter:
    """Restarts servers from a thread of its own, `delay` seconds after each
    request, since the network's observer must not block."""

    def __init__(self, cfg, delay):
        self.cfg = cfg
        self.delay = delay
        self.mu = threading.Lock()
        self.pending = set()
        self.restarts = 0
        self.requests = queue.Queue()
        self.stopped = threading.Event()
        self.thread = cfg.start_thread(self.run, name="extra-restarter")

    def request(self, i):
        with self.mu:
            if i in self.pending:
                return
            self.pending.add(i)
        self.requests.put((time.monotonic() + self.delay, i))

    def run(self):
        while not (self.stopped.is_set() or self.cfg.checkFinished()):
            try:
                when, i = self.requests.get(timeout=0.05)
            except queue.Empty:
                continue
            time.sleep(max(0.0, when - time.monotonic()))
            try:
                if not self.cfg.checkFinished():
                    restart(self.cfg, i)
            finally:  # a failed restart is recorded by start_thread; wait_idle reports it
                with self.mu:
                    self.pending.discard(i)
                    self.restarts += 1

    def wait_idle(self):
        """Wait until every requested restart is done."""
        while True:
            self.cfg.check_failure()
            with self.mu:
                if not self.pending:
                    return
            time.sleep(0.010)

    def stop(self):
        self.stopped.set()
        self.thread.join()


class Monitor:
    """Looks at every running server's GetState every 2 ms: who led each term
    (a restarted server counts as the same server), and when each server's term
    changed."""

    def __init__(self, cfg):
        self.cfg = cfg
        self.mu = threading.Lock()
        self.leaders = {}  # term -> servers seen leading it
        self.changes = [[] for _ in range(cfg.n)]  # per server: (time, new term)
        self.terms = [None] * cfg.n
        self.stopped = threading.Event()
        self.thread = cfg.start_thread(self.run, name="extra-monitor")

    def run(self):
        while not (self.stopped.is_set() or self.cfg.checkFinished()):
            for i in range(self.cfg.n):
                rf = self.cfg.rafts[i]
                if rf is None:
                    continue
                term, leader = rf.GetState()
                now = time.monotonic()
                with self.mu:
                    if leader:
                        self.leaders.setdefault(term, set()).add(i)
                    if term != self.terms[i]:
                        self.terms[i] = term
                        self.changes[i].append((now, term))
            time.sleep(POLL)

    def two_leaders(self):
        """(term, servers) of the first term seen with two leaders, or None."""
        with self.mu:
            for term in sorted(self.leaders):
                if len(self.leaders[term]) > 1:
                    return term, sorted(self.leaders[term])
        return None

    def term_changes(self, i, since):
        with self.mu:
            return [(t, term) for t, term in self.changes[i] if t > since]

    def stop(self):
        self.stopped.set()
        self.thread.join()


def check_two_leaders(monitor):
    found = monitor.two_leaders()
    if found is not None:
        term, (x, y, *_) = found
        pytest.fail(
            f"term {term} has two leaders: {x} and {y} -- a restarted peer voted twice in one term; "
            "Figure 2: votedFor is persistent state: save it to stable storage before replying to "
            "RequestVote, and restore it in Make",
            pytrace=False,
        )


# ---------------------------------------------------------------- tests


@EXTRA
def TestExtraVoteSurvivesRestart():
    servers = 3
    title = "Test (extra): a vote survives a restart (crash after vote, partial partition)"
    rule = "Figure 2: votedFor is persistent state, saved before replying to RequestVote"
    with extra_test(servers, title, rule) as (cfg, keep):
        restarter = keep(Restarter(cfg, RESTART_AFTER_VOTE))
        monitor = keep(Monitor(cfg))
        voter = [None]  # the server to restart once it has answered a RequestVote

        def observe(ev):
            if ev.kind == "reply" and ev.svcMeth.endswith(".RequestVote") and ev.servername == voter[0]:
                restarter.request(ev.servername)

        cfg.net.Observe(observe)
        for _ in range(3):
            p = cfg.checkOneLeader()
            a, b = [i for i in range(servers) if i != p]
            # a and b cannot hear each other, nor p: both time out into the same term,
            # and each needs p's vote.  p answers them, and restarts 20 ms after each
            # answer reached its candidate, so that the candidate can win.
            set_link(cfg, a, b, False)
            set_link(cfg, b, a, False)
            set_link(cfg, p, a, False)
            set_link(cfg, p, b, False)
            voter[0] = p
            time.sleep(RaftElectionTimeout)
            voter[0] = None
            restarter.wait_idle()
            check_two_leaders(monitor)
            set_link(cfg, a, b, True)
            set_link(cfg, b, a, True)
            cfg.connect(p)
        cfg.one(cmd(), servers, True)
        check_two_leaders(monitor)


@EXTRA
def TestExtraOneWayPartition():
    servers = 3
    title = "Test (extra): a leader that hears a higher term only in replies steps down"
    rule = "Figure 2, Rules for All Servers: a higher term in a response makes a server a follower"
    with extra_test(servers, title, rule) as (cfg, keep):
        leader1 = cfg.checkOneLeader()
        cfg.one(cmd(), servers, True)
        cfg.disconnect(leader1)
        leader2 = cfg.checkOneLeader()
        cfg.one(cmd(), servers - 1, True)
        term2, _ = cfg.rafts[leader2].GetState()
        # Only the old leader's own requests get through, with their replies.
        for j in range(servers):
            if j != leader1:
                set_link(cfg, leader1, j, True)
        time.sleep(RaftElectionTimeout)
        term1, still = cfg.rafts[leader1].GetState()
        if still:
            pytest.fail(
                f"server {leader1} still believes it leads (term {term1}) a second after its "
                f"AppendEntries reached servers of term {term2} and their replies came back -- "
                "Figure 2, Rules for All Servers: if an RPC request or response contains term "
                "T > currentTerm, set currentTerm = T and convert to follower (AppendEntries "
                "and InstallSnapshot replies included)",
                pytrace=False,
            )
        cfg.connect(leader1)
        cfg.one(cmd(), servers, True)


@EXTRA
def TestExtraAppendSurvivesRestart():
    servers = 3
    title = "Test (extra): an entry acknowledged by a majority survives the followers' restarts"
    rule = "Figure 2: log[] is persistent state, saved before replying to AppendEntries"
    with extra_test(servers, title, rule) as (cfg, keep):
        leader = cfg.checkOneLeader()
        cfg.one(cmd(), servers, True)
        restarter = keep(Restarter(cfg, 0.0))
        armed = threading.Event()

        def observe(ev):
            # Every follower restarts right after a reply of its reached the leader.
            if armed.is_set() and ev.kind == "reply" and ev.svcMeth.endswith(".AppendEntries"):
                if sender_of(cfg, ev.endname) == leader:
                    restarter.request(ev.servername)

        cfg.net.Observe(observe)
        armed.set()
        x = cmd()
        index, _, ok = cfg.rafts[leader].Start(x)
        if not ok:
            pytest.fail(f"server {leader} stopped leading with no failure; cannot test")
        deadline = time.monotonic() + 5
        while not applied(cfg, leader, index) and time.monotonic() < deadline:
            cfg.check_failure()
            time.sleep(0.005)
        armed.clear()
        restarter.wait_idle()
        cfg.net.Observe(None)
        if not applied(cfg, leader, index):
            pytest.fail(f"leader {leader} did not commit entry {index} within 5 s ({restarter.restarts} follower restarts)")
        # The entry is committed; only the followers are left to keep it, and they restart
        # once more (a follower that got it again since its restart holds it in memory only).
        cfg.crash1(leader)
        for i in range(servers):
            if i != leader:
                restart(cfg, i)
        cfg.one(cmd(), servers - 1, True)
        n, got = cfg.nCommitted(index)
        if got != x:
            pytest.fail(
                f"entry {index} ({x}) was committed with the acknowledgement of followers that "
                f"restarted right after replying, and is lost (now {got!r}) -- {rule}",
                pytrace=False,
            )
        restart(cfg, leader)
        cfg.one(cmd(), servers, True)


@EXTRA
def TestExtraFigure8Scripted():
    servers = 5
    title = "Test (extra): Figure 8, scripted: no commit by counting old-term replicas"
    rule = (
        "Figure 2, Rules for Leaders: commit log[N] only if log[N].term == currentTerm "
        "(an older entry commits with it: Figure 8, section 5.4.2)"
    )
    with extra_test(servers, title, rule) as (cfg, keep):
        cfg.one(cmd(), servers, True)
        x = cfg.checkOneLeader()
        y = (x + 1) % servers
        zs = [i for i in range(servers) if i not in (x, y)]
        for z in zs:
            cfg.disconnect(z)
        # S1 of Figure 8: an entry of its term reaches one follower only.
        index, tx, ok = cfg.rafts[x].Start(cmd())
        if not ok:
            pytest.fail(f"server {x} stopped leading with no failure; cannot test")
        time.sleep(0.5)
        cfg.disconnect(x)
        cfg.disconnect(y)
        # S5: a leader of a later term writes its own entry at the same index, alone.
        for z in zs:
            cfg.connect(z)
        w, _ = wait_leader(cfg, zs)
        rest = [z for z in zs if z != w]
        for z in rest:
            cfg.disconnect(z)
        index2, tw, ok = cfg.rafts[w].Start(cmd())
        if not ok or index2 != index:
            pytest.fail(f"server {w} took the entry at {index2} (leading: {ok}); expected {index}")
        time.sleep(0.1)
        cfg.disconnect(w)
        # S1 again, in a later term: it brings its old entry to a majority.
        for i in (x, y, *rest):
            cfg.connect(i)
        x2, t2 = wait_leader(cfg, (x, y), above=tw)
        time.sleep(RaftElectionTimeout)
        n, _ = cfg.nCommitted(index)
        if n > 0:
            pytest.fail(
                f"entry {index} of term {tx} was committed ({n} servers applied it) after the "
                f"leader of term {t2} (server {x2}) brought it to a majority, with no entry of "
                f"its own term; server {w}, whose entry {index} has term {tw}, can still win "
                f"and overwrite it -- {rule}",
                pytrace=False,
            )
        # S1 crashes before any entry of its term; S5 wins and overwrites the entry.
        cfg.crash1(x2)
        for i in (x, y):
            cfg.disconnect(i)
        cfg.connect(w)
        cfg.one(cmd(), 3, True)
        restart(cfg, x2)
        for i in range(servers):
            cfg.connect(i)
        cfg.one(cmd(), servers, True)


@EXTRA
def TestExtraDuplicateAppend():
    servers = 3
    title = "Test (extra): a late duplicate AppendEntries truncates nothing"
    rule = (
        "Figure 2, AppendEntries receiver 3: delete an existing entry (and those after it) only "
        "if it conflicts with a new one (same index, different term); a late copy of an older "
        "request conflicts with nothing"
    )
    with extra_test(servers, title, rule) as (cfg, keep):
        leader = cfg.checkOneLeader()
        cfg.one(cmd(), servers, True)
        a, b = (leader + 1) % servers, (leader + 2) % servers
        cfg.disconnect(b)
        end = cfg.endnames[leader][a]
        mu = threading.Lock()
        seen = [0]  # the number of the latest reply on the leader's end to a
        smallest = [None]  # the size of the smallest request on that end (a heartbeat)
        cutoff = [None]  # duplicates of replies up to this number are of older requests
        cut = threading.Event()

        def observe(ev):
            if ev.endname != end:
                return
            with mu:
                if ev.kind == "reply":
                    seen[0] = ev.number
                    smallest[0] = min(ev.size, smallest[0] or ev.size)
                elif ev.kind == "duplicate" and cutoff[0] is not None and ev.number <= cutoff[0]:
                    # Older, and carrying entries (larger than a heartbeat): a copy that a
                    # Raft truncating on every AppendEntries, or on every one with entries,
                    # cuts its log short with.
                    if ev.size > smallest[0] and not cut.is_set():
                        # The follower has just handled the copy: the leader goes, before
                        # it can repair a log the copy may have cut short.
                        cfg.disconnect(leader)
                        cut.set()

        cfg.net.Observe(observe)
        cfg.net.DuplicateLate(True)
        committed = []
        for k in range(5):
            with mu:
                before = seen[0]  # every request answered so far was sent before this Start
            x = cmd()
            committed.append((cfg.one(x, servers - 1, False), x))
        with mu:
            cutoff[0] = before
        if not cut.wait(5):
            pytest.fail("no late duplicate of an older AppendEntries was delivered within 5 s")
        cfg.net.DuplicateLate(False)
        cfg.net.Observe(None)
        cfg.connect(b)
        last = cfg.one(cmd(), servers - 1, True)
        for index, x in committed:
            n, got = cfg.nCommitted(index)
            if got != x or last <= committed[-1][0]:
                pytest.fail(
                    f"entry {index} ({x}) was committed, then lost (now {got!r}; a new command "
                    f"went to {last}): follower {a} dropped entries it had acknowledged when a "
                    f"late duplicate AppendEntries arrived -- {rule}",
                    pytrace=False,
                )
        cfg.connect(leader)
        cfg.one(cmd(), servers, True)


def timeout_floor(cfg, monitor, seconds):
    """Cut every server off for `seconds` and return the shortest time seen
    between two elections a server started (its term rising alone): no fewer
    than its smallest election timeout.  None if no server started two."""
    for i in range(cfg.n):
        cfg.disconnect(i)
    t0 = time.monotonic()
    time.sleep(seconds)
    gaps = []
    for i in range(cfg.n):
        times = [t for t, _ in monitor.term_changes(i, t0)]
        gaps += [b - a for a, b in zip(times, times[1:])]
    for i in range(cfg.n):
        cfg.connect(i)
    return min(gaps) if gaps else None


def largest_gap(times):
    """The longest wait between successive times (seconds), 0 with fewer than two."""
    times = sorted(times)
    return max((b - a for a, b in zip(times, times[1:])), default=0.0)


@EXTRA
def TestExtraCalmElections():
    servers = 3
    title = "Test (extra): no term change without failures; one election, not two"
    rule = "Figure 2, Rules for Followers 2 and Rules for Leaders 1"
    with extra_test(servers, title, rule) as (cfg, keep):
        monitor = keep(Monitor(cfg))
        cfg.checkOneLeader()
        time.sleep(0.050)
        term1 = cfg.checkTerms()
        appends = {}  # end name -> times of its AppendEntries requests: the heartbeats

        def count(ev):
            if ev.kind == "request" and ev.svcMeth.endswith(".AppendEntries"):
                appends.setdefault(ev.endname, []).append(time.monotonic())

        cfg.net.Observe(count)
        time.sleep(2 * RaftElectionTimeout)
        cfg.net.Observe(None)
        term2 = cfg.checkTerms()
        if term1 != term2:
            calm_fail(
                f"the term went from {term1} to {term2} in {2 * RaftElectionTimeout:.0f} s with "
                "no failure -- Figure 2, Rules for Leaders 1: send heartbeats during idle periods, "
                "more often than the election timeout, so that no follower starts an election"
            )
        floor = timeout_floor(cfg, monitor, 2.5)
        heartbeat = max((largest_gap(times) for times in appends.values()), default=0.0)
        # How long a new leader's first heartbeats to a voter are held back.  With the next
        # heartbeat that makes floor / 2: less than any election timeout of the voter's (the
        # shortest seen, floor, is under twice the shortest possible where timeouts are drawn
        # from a range like 300-500 ms), so a voter that reset its timer when it granted its
        # vote does not notice.  Only under --sim: in real time the checks below only warn,
        # and the hold would make them warn on load.
        window = floor / 2 if floor else 0.0
        hold = window - heartbeat if under_sim() else 0.0
        if under_sim() and hold <= 0:
            print_line(
                f"warning: election timeouts from {floor} s and heartbeats every {heartbeat:.3f} s "
                "leave no room to hold heartbeats back: vote-timer check skipped"
            )
            hold = 0.0
        for _ in range(3):
            leader = cfg.checkOneLeader()
            alive = [i for i in range(servers) if i != leader]
            votes = []  # (time, candidate, voter) of every RequestVote reply
            holders = []

            def observe(ev, votes=votes, holders=holders):
                if ev.kind != "reply" or not ev.svcMeth.endswith(".RequestVote"):
                    return
                c, v = sender_of(cfg, ev.endname), ev.servername
                votes.append((time.monotonic(), c, v))
                if hold and c is not None:
                    set_link(cfg, c, v, False)
                    holders.append(cfg.start_thread(reopen, c, v, name="extra-reopen"))

            def reopen(c, v):
                time.sleep(hold)
                if cfg.connected[c] and cfg.connected[v]:
                    set_link(cfg, c, v, True)

            cfg.net.Observe(observe)
            cfg.crash1(leader)
            c, term = wait_leader(cfg, alive)
            elected = time.monotonic()
            time.sleep(RaftElectionTimeout)
            cfg.net.Observe(None)
            for t in holders:
                t.join()
            (v,) = [i for i in alive if i != c]
            grants = [t for t, x, y in votes if x == c and y == v]
            if hold and grants:
                g = grants[-1]
                early = [(t, tm) for t, tm in monitor.term_changes(v, g) if tm > term and t <= g + window]
                if early:
                    calm_fail(
                        f"server {v} started an election (term {early[0][1]}) "
                        f"{(early[0][0] - g) * 1000:.0f} ms after answering server {c}'s "
                        f"RequestVote for term {term}, sooner than any election timeout of its "
                        f"own ({floor * 1000:.0f} ms or more) -- Figure 2, Rules for "
                        "Followers 2: granting a vote resets the election timer"
                    )
            later = [(i, tm) for i in alive for _, tm in monitor.term_changes(i, elected) if tm > term]
            if later:
                calm_fail(
                    f"server {later[0][0]} moved to term {later[0][1]} within "
                    f"{RaftElectionTimeout:.0f} s of server {c} winning term {term}, with no "
                    "failure: a second election -- Figure 2, Rules for Followers 2 (a follower "
                    "that hears the leader or grants a vote does not start one) and Rules for "
                    "Leaders 1 (heartbeats more often than the election timeout)"
                )
            restart(cfg, leader)
        cfg.one(cmd(), servers, True)
