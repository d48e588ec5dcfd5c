"""A Raft peer: the interface the tester and the key/value service use.

    rf = Make(peers, me, persister, applyCh)   create a peer
    index, term, isLeader = rf.Start(command)  start agreement on a new log entry
    term, isLeader = rf.GetState()              ask a peer its term and whether it leads
    rf.Snapshot(index, snapshot)                the service has snapshotted up to index
    rf.Kill()                                   stop the peer and all its threads

Each committed entry is sent to the service as an ApplyMsg on applyCh, in log
order; a snapshot received from the leader is sent the same way.

The rules of Figure 2 of the paper (and Figure 13's InstallSnapshot) are marked
where they are implemented: `grep -n "Figure 2" raft/raft.py` lists them.

Threads (goroutines in Go), all ending after Kill():
  ticker       election timeouts, and the leader's heartbeats (one per peer)
  applier      hands committed entries and snapshots to applyCh (one per peer)
  replicator   one per other peer: sends AppendEntries / InstallSnapshot
  vote senders one per other peer and election, each living as long as its
               RequestVote (up to 7 s when the network delays it)
  heartbeat senders  one per heartbeat to a peer whose replicator waits on an RPC
               that has not returned for a heartbeat interval, so that a hung RPC
               (up to 7 s to an unreachable peer) never delays a heartbeat; each
               lives as long as its RPC
So a 5-peer cluster idles at 5 x 6 = 30 threads, but while a leader cannot reach
some peers it adds up to ten short-lived senders a second per unreachable peer:
TestBackup2B, which cuts a leader off from three of its four followers for
seconds at a time, peaks at about 280 threads (mean 165).  Python threads cost
memory and GIL hand-offs, not correctness; the lab tests' times are unaffected.
"""

import dataclasses
import io
import random
import threading
import time

import labgob

from .util import DPrintf

__all__ = [
    "ApplyMsg",
    "AppendEntriesArgs",
    "AppendEntriesReply",
    "InstallSnapshotArgs",
    "InstallSnapshotReply",
    "Make",
    "Raft",
    "RequestVoteArgs",
    "RequestVoteReply",
]

HEARTBEAT_INTERVAL = 0.100  # seconds; the tests allow at most ~10 heartbeats a second per peer
ELECTION_TIMEOUT_MIN = 0.300  # a random timeout in [min, max) avoids split votes
ELECTION_TIMEOUT_MAX = 0.500
# After an RPC carrying entries is lost, the replicator tries again this soon
# rather than at the next heartbeat.
RETRY_AFTER_LOSS = 0.020
# A ticker that wakes this much past its election deadline was not running (its process
# stalled, or mu was held that long): it re-arms the timer instead of campaigning.
STALL_SLACK = 0.100

FOLLOWER, CANDIDATE, LEADER = "follower", "candidate", "leader"


@dataclasses.dataclass
class ApplyMsg:
    """What a peer sends on applyCh: a committed command, or a snapshot to install."""

    CommandValid: bool = False
    Command: object = None
    CommandIndex: int = 0

    SnapshotValid: bool = False
    Snapshot: bytes = b""
    SnapshotTerm: int = 0
    SnapshotIndex: int = 0


@labgob.Register
@dataclasses.dataclass
class RequestVoteArgs:
    Term: int = 0
    CandidateId: int = 0
    LastLogIndex: int = 0
    LastLogTerm: int = 0


@labgob.Register
@dataclasses.dataclass
class RequestVoteReply:
    Term: int = 0
    VoteGranted: bool = False


@labgob.Register
@dataclasses.dataclass
class AppendEntriesArgs:
    Term: int = 0
    LeaderId: int = 0
    PrevLogIndex: int = 0
    PrevLogTerm: int = 0
    Entries: list = dataclasses.field(default_factory=list)  # [term, command] pairs
    LeaderCommit: int = 0


@labgob.Register
@dataclasses.dataclass
class AppendEntriesReply:
    Term: int = 0
    Success: bool = False
    # Fast backup: the follower's term at PrevLogIndex (-1 if its log is too
    # short), the first index it holds of that term, and its log length.
    XTerm: int = 0
    XIndex: int = 0
    XLen: int = 0


@labgob.Register
@dataclasses.dataclass
class InstallSnapshotArgs:
    Term: int = 0
    LeaderId: int = 0
    LastIncludedIndex: int = 0
    LastIncludedTerm: int = 0
    Data: bytes = b""


@labgob.Register
@dataclasses.dataclass
class InstallSnapshotReply:
    Term: int = 0


class Log:
    """The log entries after the snapshot, addressed by Raft index: what etcd's
    raftLog owns, less the commit index, which stays Raft's (Figure 2).

    Entries are [term, command] pairs (lists, the form msgpack gives back, so
    that they travel in AppendEntries without conversion).  The snapshot covers
    every index up to lastIncludedIndex; the log holds lastIncludedIndex + 1 to
    last_index().  The entries' labgob encodings are kept back to back in one
    buffer, so that persisting costs in proportion to what changed since the last
    persist (appends encode only the new entries; truncating and compacting cut
    the buffer) plus one copy of the state, which the persister takes whole.
    """

    def __init__(self, lastIncludedIndex=0, lastIncludedTerm=0):
        self.reset(lastIncludedIndex, lastIncludedTerm)

    def reset(self, lastIncludedIndex, lastIncludedTerm):
        """Drop every entry: the log now starts after a snapshot through lastIncludedIndex."""
        self.lastIncludedIndex = lastIncludedIndex
        self.lastIncludedTerm = lastIncludedTerm
        self._entries = []  # index i lives at _entries[i - lastIncludedIndex - 1]
        self._encoded = bytearray()  # the entries' labgob encodings, back to back
        # Where each entry's encoding ends, counted from the start of a buffer that
        # never dropped anything: compacting then cuts the front without renumbering.
        self._ends = []
        self._front = 0  # the bytes cut from the front of that buffer

    @staticmethod
    def well_formed(entries):
        """Is entries (say, decoded from storage) a list of [term, command] pairs?"""
        return isinstance(entries, list) and all(
            isinstance(e, list) and len(e) == 2 and isinstance(e[0], int) for e in entries
        )

    def _pos(self, index):
        pos = index - self.lastIncludedIndex - 1
        if not 0 <= pos < len(self._entries):
            raise IndexError(
                f"log index {index} outside {self.lastIncludedIndex + 1}..{self.last_index()}"
            )
        return pos

    def _start(self, pos):
        """Where the encoding of the entry at pos starts in _encoded."""
        return (self._ends[pos - 1] if pos else self._front) - self._front

    def last_index(self):
        return self.lastIncludedIndex + len(self._entries)

    def last_term(self):
        return self._entries[-1][0] if self._entries else self.lastIncludedTerm

    def term(self, index):
        """The term of entry index, which may be the snapshot's last entry."""
        if index == self.lastIncludedIndex:
            return self.lastIncludedTerm
        return self._entries[self._pos(index)][0]

    def entries_from(self, index):
        """A copy of the entries from index to the end (index may be last_index() + 1)."""
        if index == self.last_index() + 1:
            return []
        return self._entries[self._pos(index):]

    def commands(self, first, last):
        """The commands of entries first..last, both included."""
        return [command for _, command in self._entries[self._pos(first) : self._pos(last) + 1]]

    def is_up_to_date(self, lastIndex, lastTerm):
        """Is a log ending at (lastIndex, lastTerm) at least as up-to-date as this one?
        §5.4.1: the log whose last entry has the later term is; with equal last terms,
        the longer log is."""
        myTerm = self.last_term()
        return lastTerm > myTerm or (lastTerm == myTerm and lastIndex >= self.last_index())

    def find_conflict(self, index, entries):
        """entries are to stand at index, index + 1, ...: the position in entries of
        the first one this log does not hold (no entry at its index, or one of another
        term), or len(entries) if it holds them all.  (etcd's findConflict.)"""
        last = self.last_index()
        for pos, (term, _) in enumerate(entries):
            if index + pos > last or self.term(index + pos) != term:
                return pos
        return len(entries)

    def append(self, entries):
        """Append [term, command] pairs.  An entry labgob cannot encode raises
        TypeError and leaves the log unchanged."""
        encoded = [labgob.encode(entry) for entry in entries]
        end = self._ends[-1] if self._ends else self._front
        for e in encoded:
            end += len(e)
            self._ends.append(end)
        self._encoded += b"".join(encoded)
        self._entries.extend(entries)

    def truncate_from(self, index, commitIndex):
        """Drop entry index and every entry after it.  A committed entry is never
        dropped (Log Matching and Leader Completeness): asking to is a bug elsewhere,
        which this refuses to hide."""
        if index <= commitIndex:
            raise AssertionError(
                f"raft log: refusing to truncate from index {index}: "
                f"entries up to the commit index {commitIndex} are committed"
            )
        pos = self._pos(index)
        del self._encoded[self._start(pos):]
        del self._ends[pos:]
        del self._entries[pos:]

    def compact_through(self, index):
        """The snapshot now covers index: drop it and the entries before it."""
        pos = self._pos(index)
        self.lastIncludedTerm = self._entries[pos][0]
        self.lastIncludedIndex = index
        del self._encoded[: self._ends[pos] - self._front]  # cheap: bytearray cuts its front in place
        self._front = self._ends[pos]
        del self._ends[: pos + 1]
        del self._entries[: pos + 1]

    def first_of_term(self, index):
        """The first index of the run of entries of index's term that ends at index
        (no lower than the first entry the log holds)."""
        term = self.term(index)
        while index - 1 > self.lastIncludedIndex and self.term(index - 1) == term:
            index -= 1
        return index

    def last_of_term(self, term):
        """The last index the log holds with this term, or None."""
        index = self.last_index()
        while index > self.lastIncludedIndex and self.term(index) > term:
            index -= 1
        if index > self.lastIncludedIndex and self.term(index) == term:
            return index
        return None

    def encoded_entries(self, prefix=b""):
        """prefix, then the labgob encoding of the list of entries: one copy."""
        return b"".join((prefix, _array_header(len(self._entries)), self._encoded))


def _array_header(n):
    """msgpack's header of an n-element array, so encoded entries can be joined into one list."""
    if n < 16:
        return bytes((0x90 | n,))
    if n < 1 << 16:
        return b"\xdc" + n.to_bytes(2, "big")
    return b"\xdd" + n.to_bytes(4, "big")


class Raft:
    """A single Raft peer."""

    def __init__(self, peers, me, persister, applyCh):
        self.mu = threading.Lock()  # protects everything below
        self.peers = peers  # RPC end points of all peers
        self.persister = persister  # holds this peer's persisted state
        self.me = me  # this peer's index into peers
        self.dead = False  # set by Kill()
        self.applyCh = applyCh

        # Persistent state (Figure 2), the log carrying the snapshot's boundary.
        self.currentTerm = 0
        self.votedFor = -1
        self.log = Log()
        self.snapshot = None  # bytes of the latest snapshot, None before the first

        # Volatile state.
        self.state = FOLLOWER
        self.commitIndex = 0
        self.lastApplied = 0
        self.electionDeadline = 0.0
        self.snapshotPending = False  # a snapshot from the leader waits for the applier

        # Leader state, reinitialised after each election.
        n = len(peers)
        self.nextIndex = [1] * n
        self.matchIndex = [0] * n
        self.replicatePending = [False] * n  # peer should get an AppendEntries now
        self.inflightSince = [None] * n  # when the replicator's current RPC was sent

        self.tickerCond = threading.Condition(self.mu)
        self.applyCond = threading.Condition(self.mu)
        self.replicateCond = [threading.Condition(self.mu) for _ in range(n)]
        self.toStart = []  # threads for the starter to start (see _go)
        self.starterCond = threading.Condition(self.mu)

    # ---- state the tester and services read ----------------------------------

    def GetState(self):
        """Return currentTerm and whether this server believes it is the leader."""
        with self.mu:
            return self.currentTerm, self.state == LEADER

    def Start(self, command):
        """Start agreement on the next command, if this server is the leader.

        Returns at once (index, term, isLeader); there is no guarantee that the
        command will ever be committed.  A command labgob cannot encode raises
        TypeError and changes nothing."""
        with self.mu:
            if self.state != LEADER or self.dead:
                return -1, self.currentTerm, False
            # Figure 2, Rules for Leaders 2: append the command to the local log.
            try:
                self.log.append([[self.currentTerm, command]])
            except TypeError as e:
                raise TypeError(f"Raft.Start: cannot replicate {command!r}: {e}") from None
            self.persist()
            index = self.log.last_index()
            self.matchIndex[self.me] = index
            DPrintf("LOG1", self.me, "T%d start %d: %r", self.currentTerm, index, command)
            self._replicateNow()
            self._advanceCommitIndex()
            return index, self.currentTerm, True

    def Kill(self):
        """Stop this peer: every thread it started ends soon after."""
        with self.mu:
            self.dead = True
            self.tickerCond.notify_all()
            self.applyCond.notify_all()
            self.starterCond.notify_all()
            for c in self.replicateCond:
                c.notify_all()
        # Release an applier blocked on applyCh that nobody reads any more.
        self.applyCh.wake_senders()
        DPrintf("DROP", self.me, "killed")

    def killed(self):
        return self.dead

    # ---- persistence ------------------------------------------------------------

    def persist(self):
        """Save currentTerm, votedFor, the log and the snapshot boundary (and the
        snapshot itself) to stable storage, where a restarted peer finds them."""
        w = io.BytesIO()
        e = labgob.NewEncoder(w)
        e.Encode(self.currentTerm)
        e.Encode(self.votedFor)
        e.Encode(self.log.lastIncludedIndex)
        e.Encode(self.log.lastIncludedTerm)
        # Not in Figure 2: a committed index, so a restarted peer can re-apply its log
        # before it hears from a leader (any committed index is a safe value).
        e.Encode(self.commitIndex)
        self.persister.Save(self.log.encoded_entries(w.getvalue()), self.snapshot)
        DPrintf("PERS", self.me, "T%d saved vote=%d last=%d", self.currentTerm, self.votedFor, self.log.last_index())

    def readPersist(self, data):
        """Restore previously persisted state (and the snapshot it refers to); a
        corrupted state is an error, not a fresh start."""
        if not data:  # bootstrap without any state
            return
        try:
            d = labgob.NewDecoder(io.BytesIO(data))
            currentTerm = d.Decode()
            votedFor = d.Decode()
            lastIncludedIndex = d.Decode()
            lastIncludedTerm = d.Decode()
            commitHint = d.Decode()
            entries = d.Decode()
            ok = (
                all(isinstance(x, int) for x in (currentTerm, votedFor, lastIncludedIndex, lastIncludedTerm, commitHint))
                and Log.well_formed(entries)
            )
        except labgob.DecodeError as err:
            raise ValueError(f"raft S{self.me}: corrupted persisted state: {err}") from None
        if not ok:
            raise ValueError(f"raft S{self.me}: corrupted persisted state: unexpected field types")
        self.currentTerm = currentTerm
        self.votedFor = votedFor
        self.log.reset(lastIncludedIndex, lastIncludedTerm)
        self.log.append(entries)
        if lastIncludedIndex > 0:
            self.snapshot = self.persister.ReadSnapshot()
            # The service restores itself from the snapshot; entries before it are applied.
            self.commitIndex = self.lastApplied = lastIncludedIndex
        self.commitIndex = max(self.commitIndex, min(commitHint, self.log.last_index()))

    # ---- snapshots from the service -----------------------------------------------

    def Snapshot(self, index: int, snapshot: bytes):
        """The service has created a snapshot holding all entries up to and
        including index: Raft no longer needs those entries and trims its log."""
        # The annotations keep labrpc from serving this as an RPC: like Go's labrpc, it
        # takes only (args, reply) handlers, and in Python it can tell them apart by type only.
        with self.mu:
            # The service calls this while taking entry `index` from applyCh, before
            # lastApplied has moved on, so the bound is commitIndex.
            if index <= self.log.lastIncludedIndex or index > self.commitIndex:
                return  # stale, or beyond what was committed: nothing to trim
            self.log.compact_through(index)
            self.snapshot = bytes(snapshot)
            self.persist()
            DPrintf("SNAP", self.me, "T%d service snapshot through %d", self.currentTerm, index)

    # ---- terms ----------------------------------------------------------------------

    def _observeTerm(self, term):
        """Every RPC request and reply passes its sender's term through here."""
        if term <= self.currentTerm:
            return
        # Figure 2, Rules for All Servers 2: a term T > currentTerm in a request or
        # response: set currentTerm = T, convert to follower (§5.1).
        DPrintf("TERM", self.me, "T%d -> T%d, follower", self.currentTerm, term)
        if self.state == LEADER:
            self._resetElectionTimer()  # a leader's deadline is long past: do not stand at once
        self.currentTerm = term
        self.votedFor = -1
        self.state = FOLLOWER
        self.persist()

    def _acceptLeader(self, term, reply):
        """The start of AppendEntries and InstallSnapshot: False if the sender is
        not the leader of our term (a stale one); otherwise follow it."""
        self._observeTerm(term)
        reply.Term = self.currentTerm
        if term < self.currentTerm:
            return False
        # Figure 2, Rules for Candidates 3: AppendEntries from the new leader: convert to follower.
        self.state = FOLLOWER
        # Figure 2, Rules for Followers 2: hearing from the current leader postpones the election.
        self._resetElectionTimer()
        return True

    # ---- elections ------------------------------------------------------------------

    def _resetElectionTimer(self):
        self.electionDeadline = time.monotonic() + random.uniform(ELECTION_TIMEOUT_MIN, ELECTION_TIMEOUT_MAX)

    def RequestVote(self, args, reply):
        with self.mu:
            self._observeTerm(args.Term)
            reply.Term = self.currentTerm
            # Figure 2, RequestVote receiver 1: reply false if term < currentTerm (§5.1).
            if args.Term < self.currentTerm:
                return
            # Figure 2, RequestVote receiver 2: grant the vote if votedFor is null or
            # candidateId, and the candidate's log is at least as up-to-date as ours.
            if self.votedFor in (-1, args.CandidateId) and self.log.is_up_to_date(args.LastLogIndex, args.LastLogTerm):
                if self.votedFor != args.CandidateId:
                    self.votedFor = args.CandidateId
                    self.persist()
                reply.VoteGranted = True
                # Figure 2, Rules for Followers 2: granting a vote postpones our own election.
                self._resetElectionTimer()
                DPrintf("VOTE", self.me, "T%d granted vote to S%d", self.currentTerm, args.CandidateId)

    def _startElection(self):
        """Become a candidate and ask every peer for its vote (caller holds mu)."""
        # Figure 2, Rules for Followers 2 and Candidates 4: an election timeout starts
        # an election.  Figure 2, Rules for Candidates 1: increment currentTerm, vote
        # for self, reset the election timer, send RequestVote to all other servers.
        self.state = CANDIDATE
        self.currentTerm += 1
        self.votedFor = self.me
        self.persist()
        self._resetElectionTimer()
        DPrintf("TIMR", self.me, "T%d election timeout, campaigning", self.currentTerm)
        args = RequestVoteArgs(self.currentTerm, self.me, self.log.last_index(), self.log.last_term())
        votes = set()  # the peers that granted their vote in this election
        self._countVote(self.me, args, votes)
        for peer in range(len(self.peers)):
            if peer != self.me:
                self._go(self._askVote, (peer, args, votes), f"raft{self.me}-vote")

    def _askVote(self, peer, args, votes):
        reply = RequestVoteReply()
        if not self.sendRequestVote(peer, args, reply):
            return
        with self.mu:
            self._observeTerm(reply.Term)
            if reply.VoteGranted:
                self._countVote(peer, args, votes)

    def sendRequestVote(self, server, args, reply):
        """Send a RequestVote to peers[server]; True if reply was filled in."""
        return self.peers[server].Call("Raft.RequestVote", args, reply)

    def _countVote(self, peer, args, votes):
        """peer granted its vote for the election args asked for (caller holds mu)."""
        if self.state != CANDIDATE or self.currentTerm != args.Term:
            return  # that election is over
        votes.add(peer)
        # Figure 2, Rules for Candidates 2: votes from a majority of servers: become leader.
        if len(votes) * 2 > len(self.peers):
            self._becomeLeader()

    def _becomeLeader(self):
        self.state = LEADER
        last = self.log.last_index()
        DPrintf("LEAD", self.me, "T%d leader, last log %d", self.currentTerm, last)
        for peer in range(len(self.peers)):
            self.nextIndex[peer] = last + 1
            self.matchIndex[peer] = 0
        self.matchIndex[self.me] = last
        # Figure 2, Rules for Leaders 1: send initial empty AppendEntries (heartbeats)
        # upon election: the ticker does so as soon as it wakes.
        self.tickerCond.notify()

    # ---- the ticker: election timeouts and heartbeats --------------------------------

    def ticker(self):
        with self.mu:
            self._resetElectionTimer()
            nextHeartbeat = 0.0
            stalled = False  # the timer was just re-armed after a stall
            while not self.dead:
                now = time.monotonic()
                if self.state == LEADER:
                    if now >= nextHeartbeat:
                        self._heartbeat(now)
                        nextHeartbeat = now + HEARTBEAT_INTERVAL
                    self.tickerCond.wait(nextHeartbeat - now if nextHeartbeat > now else HEARTBEAT_INTERVAL)
                else:
                    nextHeartbeat = 0.0
                    if now < self.electionDeadline:
                        stalled = False  # the leader has been heard since
                    elif now >= self.electionDeadline + STALL_SLACK and not stalled:
                        # Not in Figure 2: we woke long after our deadline, so this peer
                        # itself was not running (a stalled process: the leader's heartbeats
                        # may be queued, unhandled).  Count the silence from now, once: a
                        # peer that is always late still campaigns at its next deadline.
                        stalled = True
                        self._resetElectionTimer()
                    else:
                        stalled = False
                        self._startElection()
                    self.tickerCond.wait(max(self.electionDeadline - time.monotonic(), 0.001))

    def _heartbeat(self, now):
        """All a leader does on each heartbeat (caller holds mu).  Everything else
        it does is a reaction: to Start, and to replies."""
        # Figure 2, Rules for Leaders 1: repeat the heartbeats during idle periods to
        # prevent election timeouts (§5.2).  Each is an AppendEntries carrying what the
        # follower lacks (Figure 2, Rules for Leaders 3).
        for peer in range(len(self.peers)):
            if peer == self.me:
                continue
            since = self.inflightSince[peer]
            if since is not None and now - since >= HEARTBEAT_INTERVAL:
                # The replicator waits on an RPC that may never return (an unreachable
                # peer is answered only after up to 7 s): send this one on the side.
                self._go(self._sendAppendsWhileBehind, (peer,), f"raft{self.me}-heartbeat")
            else:
                self.replicatePending[peer] = True
                self.replicateCond[peer].notify()

    # ---- Go's `go` -----------------------------------------------------------------------

    def _go(self, target, args, name):
        """Run target(*args) in a thread of its own, as Go's `go` does, without waiting
        for it to start (caller holds mu): the starter thread starts it."""
        self.toStart.append(threading.Thread(target=target, args=args, name=name, daemon=True))
        self.starterCond.notify()

    def starter(self):
        # Python's Thread.start() waits until the new thread runs (Go's `go` does not).
        # On a loaded machine that can take longer than an election timeout: a ticker
        # that started its threads itself, mu held, missed its heartbeats.
        while True:
            with self.mu:
                while not self.dead and not self.toStart:
                    self.starterCond.wait()
                if self.dead:
                    return
                threads, self.toStart = self.toStart, []
            for t in threads:
                t.start()

    def _replicateNow(self):
        for peer in range(len(self.peers)):
            if peer != self.me:
                self.replicatePending[peer] = True
                self.replicateCond[peer].notify()

    # ---- replication: leader side --------------------------------------------------------

    def replicator(self, peer):
        cond = self.replicateCond[peer]
        while True:
            with self.mu:
                while not self.dead and not (self.replicatePending[peer] and self.state == LEADER):
                    cond.wait()
                if self.dead:
                    return
                self.replicatePending[peer] = False
                self.inflightSince[peer] = time.monotonic()
            try:
                delivered, behind = self._sendAppend(peer)
            finally:
                with self.mu:
                    self.inflightSince[peer] = None  # or heartbeats would take it for hung
            with self.mu:
                if not delivered and self.state == LEADER and self.nextIndex[peer] <= self.log.last_index():
                    cond.wait(RETRY_AFTER_LOSS)
                    self.replicatePending[peer] = True
                elif behind:
                    self.replicatePending[peer] = True

    def _sendAppendsWhileBehind(self, peer):
        while True:
            delivered, behind = self._sendAppend(peer)
            if not (delivered and behind):
                return

    def _sendAppend(self, peer):
        """Send peer one AppendEntries (or InstallSnapshot) and handle the reply.
        Returns (delivered, behind): whether a reply came back, and whether the
        peer still lacks entries we could send now."""
        with self.mu:
            if self.state != LEADER or self.dead:
                return True, False
            term = self.currentTerm
            nxt = self.nextIndex[peer]
            if nxt <= self.log.lastIncludedIndex:
                args = InstallSnapshotArgs(term, self.me, self.log.lastIncludedIndex, self.log.lastIncludedTerm, self.snapshot)
            else:
                # Figure 2, Rules for Leaders 3: last log index >= nextIndex: send
                # AppendEntries with the entries starting at nextIndex.
                args = AppendEntriesArgs(
                    term, self.me, nxt - 1, self.log.term(nxt - 1), self.log.entries_from(nxt), self.commitIndex
                )
        if isinstance(args, InstallSnapshotArgs):
            return self._sendSnapshot(peer, args)

        reply = AppendEntriesReply()
        if not self.peers[peer].Call("Raft.AppendEntries", args, reply):
            return False, False
        with self.mu:
            self._observeTerm(reply.Term)
            if self.state != LEADER or self.currentTerm != term:
                return True, False
            if not reply.Success:
                # Figure 2, Rules for Leaders 3: rejected for a log inconsistency:
                # decrement nextIndex and retry, a whole term at a time (fast backup).
                self.nextIndex[peer] = max(self._backup(reply), self.matchIndex[peer] + 1)
                DPrintf("LOG2", self.me, "T%d S%d rejected prev %d, next %d", term, peer, args.PrevLogIndex, self.nextIndex[peer])
                return True, True
            # Figure 2, Rules for Leaders 3: success: update nextIndex and matchIndex.
            match = args.PrevLogIndex + len(args.Entries)
            if match > self.matchIndex[peer]:
                self.matchIndex[peer] = match
                self._advanceCommitIndex()
            self.nextIndex[peer] = max(self.nextIndex[peer], match + 1)
            return True, self.nextIndex[peer] <= self.log.last_index()

    def _backup(self, reply):
        """The next index to try after a rejection, from the follower's hints."""
        if reply.XTerm == -1:
            return reply.XLen
        # Our last entry of the follower's conflicting term, if we have that term.
        last = self.log.last_of_term(reply.XTerm)
        return reply.XIndex if last is None else last + 1

    def _sendSnapshot(self, peer, args):
        reply = InstallSnapshotReply()
        if not self.peers[peer].Call("Raft.InstallSnapshot", args, reply):
            return False, False
        with self.mu:
            self._observeTerm(reply.Term)
            if self.state != LEADER or self.currentTerm != args.Term:
                return True, False
            self.matchIndex[peer] = max(self.matchIndex[peer], args.LastIncludedIndex)
            self.nextIndex[peer] = max(self.nextIndex[peer], args.LastIncludedIndex + 1)
            return True, self.nextIndex[peer] <= self.log.last_index()

    def _advanceCommitIndex(self):
        # Figure 2, Rules for Leaders 4: if a majority has matchIndex >= N > commitIndex
        # and log[N].term == currentTerm, set commitIndex = N.  Figure 8: an entry of an
        # older term is committed only through one of the current term (§5.4.2).
        n = sorted(self.matchIndex, reverse=True)[len(self.peers) // 2]
        if n > self.commitIndex and n > self.log.lastIncludedIndex and self.log.term(n) == self.currentTerm:
            self.commitIndex = n
            DPrintf("CMIT", self.me, "T%d commit %d", self.currentTerm, n)
            self.applyCond.notify()
            self._replicateNow()  # tell the followers now rather than at the next heartbeat

    # ---- replication: follower side -------------------------------------------------------

    def AppendEntries(self, args, reply):
        with self.mu:
            # Figure 2, AppendEntries receiver 1: reply false if term < currentTerm (§5.1).
            if not self._acceptLeader(args.Term, reply):
                return

            # Figure 2, AppendEntries receiver 2: reply false if the log holds no entry at
            # prevLogIndex whose term matches prevLogTerm (§5.3), with fast-backup hints.
            last = self.log.last_index()
            if args.PrevLogIndex > last:
                reply.XTerm, reply.XLen = -1, last + 1
                return
            if args.PrevLogIndex < self.log.lastIncludedIndex:
                # The snapshot already covers (committed) entries up to lastIncludedIndex.
                reply.XTerm, reply.XLen = -1, self.log.lastIncludedIndex + 1
                return
            prevTerm = self.log.term(args.PrevLogIndex)
            if prevTerm != args.PrevLogTerm:
                reply.XTerm = prevTerm
                reply.XIndex = self.log.first_of_term(args.PrevLogIndex)
                reply.XLen = last + 1
                return

            # Figure 2, AppendEntries receiver 3: if an existing entry conflicts with a new
            # one (same index, different term), delete it and all that follow it.  Entries
            # already held stay: an old (reordered) request must not cut off newer ones.
            first = args.PrevLogIndex + 1
            pos = self.log.find_conflict(first, args.Entries)
            if pos < len(args.Entries):
                if first + pos <= last:
                    self.log.truncate_from(first + pos, self.commitIndex)
                # Figure 2, AppendEntries receiver 4: append any new entries not already in the log.
                self.log.append(args.Entries[pos:])
                self.persist()
                DPrintf("LOG2", self.me, "T%d appended through %d from S%d", self.currentTerm, self.log.last_index(), args.LeaderId)
            reply.Success = True
            # Figure 2, AppendEntries receiver 5: if leaderCommit > commitIndex, set
            # commitIndex = min(leaderCommit, index of last new entry).
            newCommit = min(args.LeaderCommit, args.PrevLogIndex + len(args.Entries))
            if newCommit > self.commitIndex:
                self.commitIndex = newCommit
                self.applyCond.notify()

    def InstallSnapshot(self, args, reply):
        with self.mu:
            # Figure 13, InstallSnapshot receiver 1: reply immediately if term < currentTerm.
            if not self._acceptLeader(args.Term, reply):
                return
            # Receivers 2-5 (chunks) do not apply: the snapshot comes in one RPC.
            index = args.LastIncludedIndex
            if index <= self.commitIndex:
                return  # we hold (and will apply) everything it covers
            if index <= self.log.last_index() and self.log.term(index) == args.LastIncludedTerm:
                # Figure 13, InstallSnapshot receiver 6: an existing entry has the snapshot's
                # last index and term: retain the entries that follow it.
                self.log.compact_through(index)
            else:
                # Figure 13, InstallSnapshot receiver 7: discard the entire log.
                self.log.reset(index, args.LastIncludedTerm)
            self.snapshot = args.Data
            self.commitIndex = index
            self.persist()
            # Figure 13, InstallSnapshot receiver 8: the service resets its state machine
            # from the snapshot, which the applier hands it.
            self.snapshotPending = True
            self.applyCond.notify()
            DPrintf("SNAP", self.me, "T%d installed snapshot through %d from S%d", self.currentTerm, index, args.LeaderId)

    # ---- applying to the service ----------------------------------------------------------

    def applier(self):
        # Figure 2, Rules for All Servers 1: if commitIndex > lastApplied, apply the
        # entries up to commitIndex, in order.
        while True:
            with self.mu:
                while not self.dead and not self.snapshotPending and self.lastApplied >= self.commitIndex:
                    self.applyCond.wait()
                if self.dead:
                    return
                if self.snapshotPending:
                    self.snapshotPending = False
                    msgs = [
                        ApplyMsg(
                            SnapshotValid=True,
                            Snapshot=self.snapshot,
                            SnapshotTerm=self.log.lastIncludedTerm,
                            SnapshotIndex=self.log.lastIncludedIndex,
                        )
                    ]
                else:
                    first = self.lastApplied + 1
                    msgs = [
                        ApplyMsg(CommandValid=True, Command=command, CommandIndex=index)
                        for index, command in enumerate(self.log.commands(first, self.commitIndex), first)
                    ]
            # Never hold the lock while the service takes a message: it may call Snapshot().
            for msg in msgs:
                if not self.applyCh.send(msg, stop=self.killed):
                    return  # killed, or the channel was closed: the service is gone
                index = msg.SnapshotIndex if msg.SnapshotValid else msg.CommandIndex
                with self.mu:
                    if index > self.lastApplied:
                        self.lastApplied = index
                    if self.snapshotPending:
                        break  # a newer snapshot supersedes the rest of this batch
            if msgs:
                DPrintf("CMIT", self.me, "applied through %d", self.lastApplied)


def Make(peers, me, persister, applyCh):
    """Create a Raft peer.  peers holds the ClientEnds of all servers (this one
    is peers[me]); persister holds what an earlier incarnation saved; committed
    entries go to applyCh (a raft.Chan).  Returns at once, with the peer's
    threads running."""
    rf = Raft(peers, me, persister, applyCh)
    # initialize from state persisted before a crash
    rf.readPersist(persister.ReadRaftState())
    threading.Thread(target=rf.ticker, name=f"raft{me}-ticker", daemon=True).start()
    threading.Thread(target=rf.applier, name=f"raft{me}-applier", daemon=True).start()
    threading.Thread(target=rf.starter, name=f"raft{me}-starter", daemon=True).start()
    for peer in range(len(peers)):
        if peer != me:
            threading.Thread(target=rf.replicator, args=(peer,), name=f"raft{me}-replicator{peer}", daemon=True).start()
    return rf
