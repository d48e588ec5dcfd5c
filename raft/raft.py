# BEGIN SOLUTION
"""A Raft peer: the interface the tester and the key/value service use.

    rf = Make(peers, me, persister, applyCh)   create a peer
    index, term, isLeader = rf.Start(command)  start agreement on a new log entry
    term, isLeader = rf.GetState()              ask a peer its term and whether it leads
    rf.Snapshot(index, snapshot)                the service has snapshotted up to index
    rf.Kill()                                   stop the peer and all its threads

Each committed entry is sent to the service as an ApplyMsg on applyCh, in log
order; a snapshot received from the leader is sent the same way.

Threads (goroutines in Go), all ending after Kill():
  ticker       election timeouts, and heartbeats while leader
  applier      hands committed entries and snapshots to applyCh
  replicator   one per other peer: sends AppendEntries / InstallSnapshot
  election and heartbeat senders: short-lived, one per RPC that must not wait
               behind another (votes; heartbeats to a peer whose last RPC hangs)
"""
# END SOLUTION
#> """A Raft peer: the interface the tester and the key/value service use.
#>
#>     rf = Make(peers, me, persister, applyCh)   create a peer
#>     index, term, isLeader = rf.Start(command)  start agreement on a new log entry
#>     term, isLeader = rf.GetState()              ask a peer its term and whether it leads
#>     rf.Snapshot(index, snapshot)                the service has snapshotted up to index
#>     rf.Kill()                                   stop the peer and all its threads
#>
#> Each time a new entry is committed to the log, each peer sends an ApplyMsg
#> for it on applyCh, to the service (or tester) on the same server.
#> """

import dataclasses
# BEGIN SOLUTION
import io
# END SOLUTION
#> # import io
import random
import threading
import time

import labgob

from .util import DPrintf, Debug

__all__ = [
    "ApplyMsg",
    # BEGIN SOLUTION
    "AppendEntriesArgs",
    "AppendEntriesReply",
    "InstallSnapshotArgs",
    "InstallSnapshotReply",
    # END SOLUTION
    "Make",
    "Raft",
    "RequestVoteArgs",
    "RequestVoteReply",
]

# BEGIN SOLUTION
HEARTBEAT_INTERVAL = 0.100  # seconds; the tests allow at most ~10 heartbeats a second per peer
ELECTION_TIMEOUT_MIN = 0.300  # a random timeout in [min, max) avoids split votes
ELECTION_TIMEOUT_MAX = 0.500
# After an RPC carrying entries is lost, the replicator tries again this soon
# rather than at the next heartbeat.
RETRY_AFTER_LOSS = 0.020

FOLLOWER, CANDIDATE, LEADER = "follower", "candidate", "leader"
_LOST = "lost"  # what _sendAppend returns when its RPC got no reply
# END SOLUTION


@dataclasses.dataclass
class ApplyMsg:
    """What a peer sends on applyCh: a committed command, or a snapshot to install."""
    #> # Set CommandValid to True when the message carries a newly committed log
    #> # entry.  In part 2D other kinds of messages (snapshots) travel on applyCh
    #> # too: set CommandValid to False for those.

    CommandValid: bool = False
    Command: object = None
    CommandIndex: int = 0

    #> # For 2D:
    SnapshotValid: bool = False
    Snapshot: bytes = b""
    SnapshotTerm: int = 0
    SnapshotIndex: int = 0


@labgob.Register
@dataclasses.dataclass
class RequestVoteArgs:
    #> """Example RequestVote RPC arguments.  Give every field a default value;
    #> @labgob.Register lets the class travel over labrpc."""
    #>
    #> # Your data here (2A, 2B).
    # BEGIN SOLUTION
    Term: int = 0
    CandidateId: int = 0
    LastLogIndex: int = 0
    LastLogTerm: int = 0
    # END SOLUTION


@labgob.Register
@dataclasses.dataclass
class RequestVoteReply:
    #> """Example RequestVote RPC reply.  Give every field a default value: the
    #> handler is given an empty RequestVoteReply() to fill in."""
    #>
    #> # Your data here (2A).
    # BEGIN SOLUTION
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
    # END SOLUTION


class Raft:
    #> """A single Raft peer."""
    # BEGIN SOLUTION
    """A single Raft peer.

    The log is a list of [term, command] pairs (lists, not objects, so that
    persisting a long log stays cheap).  log[0] stands for the last entry
    covered by the snapshot: its term is lastIncludedTerm and its command is
    None.  Log index i lives at log[i - lastIncludedIndex].
    """
    # END SOLUTION

    def __init__(self, peers, me, persister, applyCh):
        self.mu = threading.Lock()  # protects everything below
        self.peers = peers  # RPC end points of all peers
        self.persister = persister  # holds this peer's persisted state
        self.me = me  # this peer's index into peers
        self.dead = False  # set by Kill()
        #>
        #> # Your data here (2A, 2B, 2C).
        #> # Figure 2 of the paper describes the state a Raft server keeps.
        # BEGIN SOLUTION
        self.applyCh = applyCh

        # Persistent state (Figure 2), plus the snapshot's boundary.
        self.currentTerm = 0
        self.votedFor = -1
        self.log = [[0, None]]
        self.lastIncludedIndex = 0
        self.snapshot = None  # bytes of the latest snapshot, None before the first
        self._encoded = []  # labgob bytes of log[1:], kept in step with log for persist()

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
        # END SOLUTION

    # ---- state the tester and services read ----------------------------------

    def GetState(self):
        """Return currentTerm and whether this server believes it is the leader."""
        #> term = 0
        #> isleader = False
        #> # Your code here (2A).
        #> return term, isleader
        # BEGIN SOLUTION
        with self.mu:
            return self.currentTerm, self.state == LEADER
        # END SOLUTION

    def Start(self, command):
        """Start agreement on the next command, if this server is the leader.

        Returns at once (index, term, isLeader); there is no guarantee that the
        command will ever be committed."""
        #> index = -1
        #> term = -1
        #> isLeader = True
        #>
        #> # Your code here (2B).
        #>
        #> return index, term, isLeader
        # BEGIN SOLUTION
        with self.mu:
            if self.state != LEADER or self.dead:
                return -1, self.currentTerm, False
            self._appendEntry([self.currentTerm, command])
            self.persist()
            index = self.lastLogIndex()
            self.matchIndex[self.me] = index
            if Debug:
                DPrintf("LOG1", self.me, "T%d start %d: %r", self.currentTerm, index, command)
            self._replicateNow()
            self._advanceCommitIndex()
            return index, self.currentTerm, True
        # END SOLUTION

    def Kill(self):
        """Stop this peer: every thread it started ends soon after."""
        #> # A thread with a long-running loop checks killed() and ends once
        #> # Kill() has been called: the tests check that no thread is left.
        #> self.dead = True
        #> # Your code here, if desired.
        # BEGIN SOLUTION
        with self.mu:
            self.dead = True
            self.tickerCond.notify_all()
            self.applyCond.notify_all()
            for c in self.replicateCond:
                c.notify_all()
        if Debug:
            DPrintf("DROP", self.me, "killed")
        # END SOLUTION

    def killed(self):
        return self.dead

    # BEGIN SOLUTION
    # ---- log helpers (caller holds mu) ----------------------------------------

    def lastLogIndex(self):
        return self.lastIncludedIndex + len(self.log) - 1

    def termAt(self, index):
        return self.log[index - self.lastIncludedIndex][0]

    def _appendEntry(self, entry):
        self.log.append(entry)
        self._encoded.append(labgob.encode(entry))

    def _truncateFrom(self, index):
        """Drop the entries at index and after."""
        k = index - self.lastIncludedIndex
        del self.log[k:]
        del self._encoded[k - 1:]

    def _trimThrough(self, index, term):
        """Drop the entries up to and including index; log[0] then stands for it."""
        k = index - self.lastIncludedIndex
        if 0 < k < len(self.log):
            self.log = [[term, None]] + self.log[k + 1:]
            self._encoded = self._encoded[k:]
        else:
            self.log = [[term, None]]
            self._encoded = []
        self.lastIncludedIndex = index

    # END SOLUTION
    # ---- persistence ------------------------------------------------------------

    def persist(self):
        #> """Save Raft's persistent state (Figure 2 says what it is) to stable
        #> storage, where a restarted peer finds it.  Until snapshots are
        #> implemented, pass None as Save's second argument; after that, pass the
        #> current snapshot (None if there is none yet)."""
        #> # Your code here (2C).
        #> # Example:
        #> # w = io.BytesIO()
        #> # e = labgob.NewEncoder(w)
        #> # e.Encode(self.xxx)
        #> # e.Encode(self.yyy)
        #> # raftstate = w.getvalue()
        #> # self.persister.Save(raftstate, None)
        # BEGIN SOLUTION
        """Save currentTerm, votedFor, the log and the snapshot boundary (and the
        snapshot itself) to stable storage, where a restarted peer finds them."""
        w = io.BytesIO()
        e = labgob.NewEncoder(w)
        e.Encode(self.currentTerm)
        e.Encode(self.votedFor)
        e.Encode(self.lastIncludedIndex)
        e.Encode(self.log[0][0])
        # Not in Figure 2: a committed index, so a restarted peer can re-apply its log
        # before it hears from a leader (any committed index is a safe value).
        e.Encode(self.commitIndex)
        # The entries are encoded once when they join the log; only the list header is new.
        w.write(_array_header(len(self._encoded)))
        w.write(b"".join(self._encoded))
        self.persister.Save(w.getvalue(), self.snapshot)
        if Debug:
            DPrintf("PERS", self.me, "T%d saved vote=%d last=%d", self.currentTerm, self.votedFor, self.lastLogIndex())
        # END SOLUTION

    # BEGIN SOLUTION
    def readPersist(self, data, snapshot):
        """Restore previously persisted state; a corrupted state is an error, not a fresh start."""
        # END SOLUTION
    #> def readPersist(self, data):
        #> """Restore previously persisted state."""
        if not data:  # bootstrap without any state
            return
        #> # Your code here (2C).
        #> # Example:
        #> # d = labgob.NewDecoder(io.BytesIO(data))
        #> # try:
        #> #     xxx = d.Decode()
        #> #     yyy = d.Decode()
        #> # except labgob.DecodeError:
        #> #     error...
        #> # else:
        #> #     self.xxx = xxx
        #> #     self.yyy = yyy
        # BEGIN SOLUTION
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
                and isinstance(entries, list)
                and all(isinstance(en, list) and len(en) == 2 and isinstance(en[0], int) for en in entries)
            )
        except labgob.DecodeError as err:
            raise ValueError(f"raft S{self.me}: corrupted persisted state: {err}") from None
        if not ok:
            raise ValueError(f"raft S{self.me}: corrupted persisted state: unexpected field types")
        self.currentTerm = currentTerm
        self.votedFor = votedFor
        self.lastIncludedIndex = lastIncludedIndex
        self.log = [[lastIncludedTerm, None]] + entries
        self._encoded = [labgob.encode(en) for en in entries]
        if lastIncludedIndex > 0:
            self.snapshot = snapshot
            # The service restores itself from the snapshot; entries before it are applied.
            self.commitIndex = self.lastApplied = lastIncludedIndex
        self.commitIndex = max(self.commitIndex, min(commitHint, self.lastLogIndex()))
        # END SOLUTION

    # ---- snapshots from the service -----------------------------------------------

    def Snapshot(self, index, snapshot):
        """The service has created a snapshot holding all entries up to and
        including index: Raft no longer needs those entries and trims its log."""
        #> # Your code here (2D).
        #> pass
        # BEGIN SOLUTION
        with self.mu:
            # The service calls this while taking entry `index` from applyCh, before
            # lastApplied has moved on, so the bound is commitIndex.
            if index <= self.lastIncludedIndex or index > self.commitIndex:
                return  # stale, or beyond what was committed: nothing to trim
            self._trimThrough(index, self.termAt(index))
            self.snapshot = bytes(snapshot)
            self.persist()
            if Debug:
                DPrintf("SNAP", self.me, "T%d service snapshot through %d", self.currentTerm, index)
        # END SOLUTION

    # ---- elections ------------------------------------------------------------------

    # BEGIN SOLUTION
    def _resetElectionTimer(self):
        self.electionDeadline = time.monotonic() + random.uniform(ELECTION_TIMEOUT_MIN, ELECTION_TIMEOUT_MAX)

    def _becomeFollower(self, term):
        """A higher term has been seen: adopt it and step down.  Caller persists."""
        if Debug:
            DPrintf("TERM", self.me, "T%d -> T%d, follower", self.currentTerm, term)
        self.currentTerm = term
        self.votedFor = -1
        self.state = FOLLOWER

    def _upToDate(self, lastLogIndex, lastLogTerm):
        """Is a candidate's log at least as up-to-date as ours (section 5.4.1)?"""
        myTerm = self.log[-1][0]
        return lastLogTerm > myTerm or (lastLogTerm == myTerm and lastLogIndex >= self.lastLogIndex())

    # END SOLUTION
    def RequestVote(self, args, reply):
        #> """Example RequestVote RPC handler."""
        #> # Your code here (2A, 2B).
        #> pass
        # BEGIN SOLUTION
        with self.mu:
            if args.Term > self.currentTerm:
                self._becomeFollower(args.Term)
                self.persist()
            reply.Term = self.currentTerm
            if (
                args.Term == self.currentTerm
                and self.votedFor in (-1, args.CandidateId)
                and self._upToDate(args.LastLogIndex, args.LastLogTerm)
            ):
                if self.votedFor != args.CandidateId:
                    self.votedFor = args.CandidateId
                    self.persist()
                reply.VoteGranted = True
                self._resetElectionTimer()
                if Debug:
                    DPrintf("VOTE", self.me, "T%d granted vote to S%d", self.currentTerm, args.CandidateId)
        # END SOLUTION

    #> def sendRequestVote(self, server, args, reply):
    #>     """Example code to send a RequestVote RPC to peers[server].
    #>
    #>     reply must be a RequestVoteReply, filled in place when the call
    #>     succeeds.  labrpc simulates a lossy network: a peer may be unreachable,
    #>     a request or a reply may be lost.  Call() returns True if a reply came
    #>     back within a timeout, False otherwise (a dead or unreachable peer, a
    #>     lost request or reply), so it may take a while to return.  It always
    #>     returns, unless the handler on the other side never does: there is no
    #>     need for timeouts of your own around Call().  See labrpc/labrpc.py.
    #>     If an RPC does not work, check that the args and reply dataclasses
    #>     are registered with labgob and give every field a default.
    #>     """
    #>     ok = self.peers[server].Call("Raft.RequestVote", args, reply)
    #>     return ok
    # BEGIN SOLUTION
    def _startElection(self):
        """Become a candidate and ask every peer for its vote (caller holds mu)."""
        self.state = CANDIDATE
        self.currentTerm += 1
        self.votedFor = self.me
        self.persist()
        self._resetElectionTimer()
        if Debug:
            DPrintf("TIMR", self.me, "T%d election timeout, campaigning", self.currentTerm)
        args = RequestVoteArgs(self.currentTerm, self.me, self.lastLogIndex(), self.log[-1][0])
        votes = [1]
        for peer in range(len(self.peers)):
            if peer != self.me:
                threading.Thread(
                    target=self._askVote, args=(peer, args, votes), name=f"raft{self.me}-vote", daemon=True
                ).start()

    def _askVote(self, peer, args, votes):
        reply = RequestVoteReply()
        if not self.peers[peer].Call("Raft.RequestVote", args, reply):
            return
        with self.mu:
            if reply.Term > self.currentTerm:
                self._becomeFollower(reply.Term)
                self.persist()
                return
            if not reply.VoteGranted or self.state != CANDIDATE or self.currentTerm != args.Term:
                return
            votes[0] += 1
            if votes[0] * 2 > len(self.peers):
                self._becomeLeader()

    def _becomeLeader(self):
        self.state = LEADER
        if Debug:
            DPrintf("LEAD", self.me, "T%d leader, last log %d", self.currentTerm, self.lastLogIndex())
        last = self.lastLogIndex()
        for peer in range(len(self.peers)):
            self.nextIndex[peer] = last + 1
            self.matchIndex[peer] = 0
        self.matchIndex[self.me] = last
        self.tickerCond.notify()  # the ticker announces the leadership at once
    # END SOLUTION

    # ---- the ticker: election timeouts and heartbeats --------------------------------

    def ticker(self):
        #> while not self.killed():
        #>     # Your code here (2A)
        #>     # Check if a leader election should be started.
        #>
        #>     # Sleep a random 50 to 350 ms.
        #>     ms = 50 + random.randrange(300)
        #>     time.sleep(ms / 1000)
        # BEGIN SOLUTION
        with self.mu:
            self._resetElectionTimer()
            nextHeartbeat = 0.0
            while not self.dead:
                now = time.monotonic()
                if self.state == LEADER:
                    if now >= nextHeartbeat:
                        self._heartbeat(now)
                        nextHeartbeat = now + HEARTBEAT_INTERVAL
                    self.tickerCond.wait(nextHeartbeat - now if nextHeartbeat > now else HEARTBEAT_INTERVAL)
                else:
                    nextHeartbeat = 0.0
                    if now >= self.electionDeadline:
                        self._startElection()
                    self.tickerCond.wait(max(self.electionDeadline - time.monotonic(), 0.001))
        # END SOLUTION

    # BEGIN SOLUTION
    def _heartbeat(self, now):
        for peer in range(len(self.peers)):
            if peer == self.me:
                continue
            since = self.inflightSince[peer]
            if since is not None and now - since >= HEARTBEAT_INTERVAL:
                # The replicator waits on an RPC that may never return (an unreachable
                # peer is answered only after up to 7 s): send this one on the side.
                threading.Thread(
                    target=self._sendAppendsWhileBehind, args=(peer,), name=f"raft{self.me}-heartbeat", daemon=True
                ).start()
            else:
                self.replicatePending[peer] = True
                self.replicateCond[peer].notify()

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
            result = self._sendAppend(peer)
            with self.mu:
                self.inflightSince[peer] = None
                if result is _LOST:
                    if self.state == LEADER and self.nextIndex[peer] <= self.lastLogIndex():
                        cond.wait(RETRY_AFTER_LOSS)
                        self.replicatePending[peer] = True
                elif result:
                    self.replicatePending[peer] = True

    def _sendAppendsWhileBehind(self, peer):
        while self._sendAppend(peer) is True:
            pass

    def _sendAppend(self, peer):
        """Send one AppendEntries (or InstallSnapshot) to peer and handle the
        reply.  Returns True when the peer still lacks entries we could send now,
        _LOST when the network lost the request or the reply."""
        with self.mu:
            if self.state != LEADER or self.dead:
                return False
            term = self.currentTerm
            nxt = self.nextIndex[peer]
            if nxt <= self.lastIncludedIndex:
                args = InstallSnapshotArgs(term, self.me, self.lastIncludedIndex, self.log[0][0], self.snapshot)
            else:
                prev = nxt - 1
                k = prev - self.lastIncludedIndex
                args = AppendEntriesArgs(term, self.me, prev, self.log[k][0], self.log[k + 1:], self.commitIndex)
        if isinstance(args, InstallSnapshotArgs):
            return self._sendSnapshot(peer, args)

        reply = AppendEntriesReply()
        if not self.peers[peer].Call("Raft.AppendEntries", args, reply):
            return _LOST
        with self.mu:
            if reply.Term > self.currentTerm:
                self._becomeFollower(reply.Term)
                self.persist()
                self._resetElectionTimer()
                return False
            if self.state != LEADER or self.currentTerm != term:
                return False
            if reply.Success:
                match = args.PrevLogIndex + len(args.Entries)
                if match > self.matchIndex[peer]:
                    self.matchIndex[peer] = match
                    self._advanceCommitIndex()
                self.nextIndex[peer] = max(self.nextIndex[peer], match + 1)
            else:
                self.nextIndex[peer] = max(self._backup(reply), self.matchIndex[peer] + 1)
                if Debug:
                    DPrintf("LOG2", self.me, "T%d S%d rejected prev %d, next %d", term, peer, args.PrevLogIndex, self.nextIndex[peer])
                return True
            return self.nextIndex[peer] <= self.lastLogIndex()

    def _backup(self, reply):
        """The next index to try after a rejection, from the follower's hints."""
        if reply.XTerm == -1:
            return reply.XLen
        # Our last entry of the follower's conflicting term, if we have that term.
        i = self.lastLogIndex()
        while i > self.lastIncludedIndex and self.termAt(i) > reply.XTerm:
            i -= 1
        if i > self.lastIncludedIndex and self.termAt(i) == reply.XTerm:
            return i + 1
        return reply.XIndex

    def _sendSnapshot(self, peer, args):
        reply = InstallSnapshotReply()
        if not self.peers[peer].Call("Raft.InstallSnapshot", args, reply):
            return _LOST
        with self.mu:
            if reply.Term > self.currentTerm:
                self._becomeFollower(reply.Term)
                self.persist()
                self._resetElectionTimer()
                return False
            if self.state != LEADER or self.currentTerm != args.Term:
                return False
            self.matchIndex[peer] = max(self.matchIndex[peer], args.LastIncludedIndex)
            self.nextIndex[peer] = max(self.nextIndex[peer], args.LastIncludedIndex + 1)
            return self.nextIndex[peer] <= self.lastLogIndex()

    def _advanceCommitIndex(self):
        """Commit the highest index a majority holds, if it is of the current
        term (Figure 8: older terms commit only through it)."""
        n = sorted(self.matchIndex, reverse=True)[len(self.peers) // 2]
        if n > self.commitIndex and n > self.lastIncludedIndex and self.termAt(n) == self.currentTerm:
            self.commitIndex = n
            if Debug:
                DPrintf("CMIT", self.me, "T%d commit %d", self.currentTerm, n)
            self.applyCond.notify()
            self._replicateNow()  # tell the followers now rather than at the next heartbeat

    # ---- replication: follower side -------------------------------------------------------

    def AppendEntries(self, args, reply):
        with self.mu:
            reply.Term = self.currentTerm
            if args.Term < self.currentTerm:
                return
            if args.Term > self.currentTerm:
                self._becomeFollower(args.Term)
                self.persist()
                reply.Term = args.Term
            self.state = FOLLOWER  # a candidate of this term yields to its leader
            self._resetElectionTimer()

            last = self.lastLogIndex()
            if args.PrevLogIndex > last:
                reply.XTerm, reply.XLen = -1, last + 1
                return
            if args.PrevLogIndex < self.lastIncludedIndex:
                # The snapshot already covers (committed) entries up to lastIncludedIndex.
                reply.XTerm, reply.XLen = -1, self.lastIncludedIndex + 1
                return
            prevTerm = self.termAt(args.PrevLogIndex)
            if prevTerm != args.PrevLogTerm:
                reply.XTerm = prevTerm
                i = args.PrevLogIndex
                while i - 1 > self.lastIncludedIndex and self.termAt(i - 1) == prevTerm:
                    i -= 1
                reply.XIndex = i
                reply.XLen = last + 1
                return

            # Append what is new; an old (reordered) request must not cut off newer entries.
            changed = False
            index = args.PrevLogIndex
            for pos, entry in enumerate(args.Entries):
                index += 1
                if index <= last:
                    if self.termAt(index) == entry[0]:
                        continue
                    self._truncateFrom(index)
                for e in args.Entries[pos:]:
                    self._appendEntry(e)
                changed = True
                break
            if changed:
                self.persist()
                if Debug:
                    DPrintf("LOG2", self.me, "T%d appended through %d from S%d", self.currentTerm, self.lastLogIndex(), args.LeaderId)
            reply.Success = True
            newCommit = min(args.LeaderCommit, args.PrevLogIndex + len(args.Entries))
            if newCommit > self.commitIndex:
                self.commitIndex = newCommit
                self.applyCond.notify()

    def InstallSnapshot(self, args, reply):
        with self.mu:
            reply.Term = self.currentTerm
            if args.Term < self.currentTerm:
                return
            if args.Term > self.currentTerm:
                self._becomeFollower(args.Term)
                reply.Term = args.Term
                self.persist()
            self.state = FOLLOWER
            self._resetElectionTimer()
            if args.LastIncludedIndex <= self.commitIndex:
                return  # we hold (and will apply) everything it covers
            index = args.LastIncludedIndex
            if index <= self.lastLogIndex() and self.termAt(index) == args.LastIncludedTerm:
                self._trimThrough(index, args.LastIncludedTerm)  # keep the entries that follow it
            else:
                self.log = [[args.LastIncludedTerm, None]]
                self._encoded = []
                self.lastIncludedIndex = index
            self.snapshot = args.Data
            self.commitIndex = index
            self.persist()
            self.snapshotPending = True
            self.applyCond.notify()
            if Debug:
                DPrintf("SNAP", self.me, "T%d installed snapshot through %d from S%d", self.currentTerm, index, args.LeaderId)

    # ---- applying to the service ----------------------------------------------------------

    def applier(self):
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
                            SnapshotTerm=self.log[0][0],
                            SnapshotIndex=self.lastIncludedIndex,
                        )
                    ]
                else:
                    first = self.lastApplied + 1
                    k = first - self.lastIncludedIndex
                    msgs = [
                        ApplyMsg(CommandValid=True, Command=entry[1], CommandIndex=first + i)
                        for i, entry in enumerate(self.log[k : k + self.commitIndex - self.lastApplied])
                    ]
            # Never hold the lock while the service takes a message: it may call Snapshot().
            for msg in msgs:
                if not self.applyCh.send(msg):
                    return  # the channel was closed: the service is gone
                index = msg.SnapshotIndex if msg.SnapshotValid else msg.CommandIndex
                with self.mu:
                    if index > self.lastApplied:
                        self.lastApplied = index
                    if self.snapshotPending:
                        break  # a newer snapshot supersedes the rest of this batch
            if Debug and msgs:
                DPrintf("CMIT", self.me, "applied through %d", self.lastApplied)


def _array_header(n):
    """msgpack's header of an n-element array, so encoded entries can be joined into one list."""
    if n < 16:
        return bytes((0x90 | n,))
    if n < 1 << 16:
        return b"\xdc" + n.to_bytes(2, "big")
    return b"\xdd" + n.to_bytes(4, "big")
# END SOLUTION


def Make(peers, me, persister, applyCh):
    """Create a Raft peer.  peers holds the ClientEnds of all servers (this one
    is peers[me]); persister holds what an earlier incarnation saved; committed
    entries go to applyCh.  Returns at once, with the peer's threads running."""
    rf = Raft(peers, me, persister, applyCh)
    #>
    #> # Your initialization code here (2A, 2B, 2C).
    #>
    # initialize from state persisted before a crash
    # BEGIN SOLUTION
    rf.readPersist(persister.ReadRaftState(), persister.ReadSnapshot())
    # END SOLUTION
    #> rf.readPersist(persister.ReadRaftState())
    #>
    #> # start the ticker thread, which starts elections
    threading.Thread(target=rf.ticker, name=f"raft{me}-ticker", daemon=True).start()
    # BEGIN SOLUTION
    threading.Thread(target=rf.applier, name=f"raft{me}-applier", daemon=True).start()
    for peer in range(len(peers)):
        if peer != me:
            threading.Thread(target=rf.replicator, args=(peer,), name=f"raft{me}-replicator{peer}", daemon=True).start()
    # END SOLUTION
    return rf
