"""A Raft peer: the interface the tester and the key/value service use.

    rf = Make(peers, me, persister, applyCh)   create a peer
    index, term, isLeader = rf.Start(command)  start agreement on a new log entry
    term, isLeader = rf.GetState()              ask a peer its term and whether it leads
    rf.Snapshot(index, snapshot)                the service has snapshotted up to index
    rf.Kill()                                   stop the peer and all its threads

Each time a new entry is committed to the log, each peer sends an ApplyMsg
for it on applyCh, to the service (or tester) on the same server.
"""

import dataclasses
# import io
import random
import threading
import time

import labgob

from .util import DPrintf, Debug

__all__ = [
    "ApplyMsg",
    "Make",
    "Raft",
    "RequestVoteArgs",
    "RequestVoteReply",
]


@dataclasses.dataclass
class ApplyMsg:
    """What a peer sends on applyCh: a committed command, or a snapshot to install."""
    # Set CommandValid to True when the message carries a newly committed log
    # entry.  In part 2D other kinds of messages (snapshots) travel on applyCh
    # too: set CommandValid to False for those.

    CommandValid: bool = False
    Command: object = None
    CommandIndex: int = 0

    # For 2D:
    SnapshotValid: bool = False
    Snapshot: bytes = b""
    SnapshotTerm: int = 0
    SnapshotIndex: int = 0


# The RPC types sit between Snapshot and RequestVote in Go; a Python class is
# one piece, so they come before Raft.
@labgob.Register
@dataclasses.dataclass
class RequestVoteArgs:
    """Example RequestVote RPC arguments.  Give every field a default value;
    @labgob.Register lets the class travel over labrpc."""

    # Your data here (2A, 2B).


@labgob.Register
@dataclasses.dataclass
class RequestVoteReply:
    """Example RequestVote RPC reply.  Give every field a default value: the
    handler is given an empty RequestVoteReply() to fill in."""

    # Your data here (2A).


class Raft:
    """A single Raft peer."""

    # Python defines a class in one piece: the RPC types that Go declares between
    # Snapshot and RequestVote are above, and the methods below keep Go's order.

    def __init__(self, peers, me, persister, applyCh):
        self.mu = threading.Lock()  # protects everything below
        self.peers = peers  # RPC end points of all peers
        self.persister = persister  # holds this peer's persisted state
        self.me = me  # this peer's index into peers
        self.dead = False  # set by Kill()

        # Your data here (2A, 2B, 2C).
        # Figure 2 of the paper describes the state a Raft server keeps.

    def GetState(self):
        """Return currentTerm and whether this server believes it is the leader."""
        term = 0
        isleader = False
        # Your code here (2A).
        return term, isleader

    def persist(self):
        """Save Raft's persistent state (Figure 2 says what it is) to stable
        storage, where a restarted peer finds it.  Until snapshots are
        implemented, pass None as Save's second argument; after that, pass the
        current snapshot (None if there is none yet)."""
        # Your code here (2C).
        # Example:
        # w = io.BytesIO()
        # e = labgob.NewEncoder(w)
        # e.Encode(self.xxx)
        # e.Encode(self.yyy)
        # raftstate = w.getvalue()
        # self.persister.Save(raftstate, None)

    def readPersist(self, data):
        """Restore previously persisted state."""
        if not data:  # bootstrap without any state
            return
        # Your code here (2C).
        # Example:
        # d = labgob.NewDecoder(io.BytesIO(data))
        # try:
        #     xxx = d.Decode()
        #     yyy = d.Decode()
        # except labgob.DecodeError:
        #     error...
        # else:
        #     self.xxx = xxx
        #     self.yyy = yyy

    def Snapshot(self, index: int, snapshot: bytes):
        """The service has created a snapshot holding all entries up to and
        including index: Raft no longer needs those entries and trims its log."""
        # The annotations keep labrpc from serving this as an RPC: like Go's labrpc, it
        # takes only (args, reply) handlers, and in Python it can tell them apart by type only.
        # Your code here (2D).
        pass

    def RequestVote(self, args, reply):
        """Example RequestVote RPC handler."""
        # Your code here (2A, 2B).
        pass

    def sendRequestVote(self, server, args, reply):
        """Example code to send a RequestVote RPC to a server.

        server is the target's index in self.peers; args holds the RPC's
        arguments, and reply (a new RequestVoteReply()) is filled in place
        when the call succeeds, so pass the object you will read afterwards.
        args and reply must be of the types the handler (RequestVote) takes.

        labrpc simulates a lossy network: a peer may be unreachable,
        a request or a reply may be lost.  Call() returns True if a reply came
        back within a timeout, False otherwise (a dead or unreachable peer, a
        lost request or reply), so it may take a while to return.  It always
        returns, unless the handler on the other side never does: there is no
        need for timeouts of your own around Call().  See labrpc/labrpc.py
        for more.

        If an RPC does not work, check that the args and reply dataclasses
        are registered with labgob and give every field a default, and that
        you read the reply object you passed to Call(), not another one.
        """
        ok = self.peers[server].Call("Raft.RequestVote", args, reply)
        return ok

    def Start(self, command):
        """The service (a key/value server, say) wants agreement on the next
        command to append to the log.  If this server is not the leader, return
        with isLeader False; otherwise start the agreement and return at once,
        without waiting for it.  There is no guarantee that the command will
        ever be committed: the leader may fail or lose an election.  Even after
        Kill() this must return, gracefully.

        Returns (index, term, isLeader): the index the command will have if it
        is ever committed, the current term, and whether this server believes
        it is the leader."""
        index = -1
        term = -1
        isLeader = True

        # Your code here (2B).

        return index, term, isLeader

    def Kill(self):
        """The tester calls Kill() when this peer is no longer needed (a crash,
        or the end of a test).  killed() tells your code whether Kill() has
        been called; setting and reading the flag needs no lock (a bool
        assignment is atomic in Python, as Go's atomic store is).

        Every thread with a long-running loop must check killed() and end once
        it is true: a thread left running uses memory and CPU time, can make
        later tests fail and fills the debug output with lines of a dead peer.
        Unlike Go's tester, this one checks after each test that every thread
        the test started has ended, and fails the test naming those that have
        not.  Wake any thread that sleeps on a condition here, so that it sees
        killed() soon."""
        self.dead = True
        # Your code here, if desired.

    def killed(self):
        return self.dead

    def ticker(self):
        while not self.killed():
            # Your code here (2A)
            # Check if a leader election should be started.

            # Sleep a random 50 to 350 ms.
            ms = 50 + random.randrange(300)
            time.sleep(ms / 1000)


def Make(peers, me, persister, applyCh):
    """The service or tester creates a Raft peer.  peers holds the ClientEnds
    of all the servers, this one included (peers[me]); every server's peers
    list has the same order.  persister is where this peer saves its
    persistent state, and it starts out holding the most recent saved state,
    if any.  applyCh (a raft.Chan) is where the tester or service expects the
    ApplyMsg messages.  Make() must return quickly, so start threads for any
    long-running work."""
    rf = Raft(peers, me, persister, applyCh)

    # Your initialization code here (2A, 2B, 2C).

    # initialize from state persisted before a crash
    rf.readPersist(persister.ReadRaftState())

    # start the ticker thread, which starts elections
    threading.Thread(target=rf.ticker, name=f"raft{me}-ticker", daemon=True).start()

    return rf
