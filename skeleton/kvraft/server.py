"""The key/value server: a replicated state machine on Raft."""

import dataclasses
import threading

import labgob
import raft
from raft.util import DPrintf  # noqa: F401  (prints only when VERBOSE=1)

from .common import OK, ErrNoKey, ErrWrongLeader  # noqa: F401


@labgob.Register
@dataclasses.dataclass
class Op:
    """A log entry: one clerk request."""

    # Your definitions here.
    # Give every field a default value.


class KVServer:
    def __init__(self, servers, me, persister, maxraftstate):
        self.mu = threading.Lock()
        self.me = me
        self.dead = False  # set by Kill()
        self.maxraftstate = maxraftstate  # snapshot if the Raft state grows this big (-1: never)

        # Your definitions here.

    def Get(self, args, reply):
        # Your code here.
        pass

    def PutAppend(self, args, reply):
        # Your code here.
        pass

    def Kill(self):
        """The tester calls Kill() when this server will not be needed again.
        The code given sets dead (no lock needed: a bool assignment is atomic)
        and kills the Raft; killed() lets long-running loops test dead.  You
        may add code here, for example to silence a killed server's debug
        output.

        Unlike Go's tester, this one checks after each test that every thread
        it started has ended, and fails the test naming those still running.
        So Kill() must make each of your threads end: the thread that reads
        applyCh (close the channel: its `for msg in self.applyCh` loop then
        ends), and any handler waiting for its command to be applied (wake it,
        so it sees killed() and returns)."""
        self.dead = True
        self.rf.Kill()
        # Your code here, if desired.

    def killed(self):
        return self.dead


def StartKVServer(servers, me, persister, maxraftstate):
    """servers holds the ends of all the servers that cooperate through Raft to
    form the fault-tolerant service; me is this server's index.  The server
    stores snapshots through its Raft, which saves them with its state; it
    should snapshot when Raft's persisted state reaches maxraftstate bytes
    (never if it is -1), so that Raft can discard its log.  Raft saves its
    state and the snapshot together, atomically, with persister.Save().
    StartKVServer() must return quickly, so start threads for any
    long-running work (reading applyCh, say)."""
    # Every dataclass that travels through Raft must be registered with labgob
    # (the @labgob.Register decorator does that for Op).
    kv = KVServer(servers, me, persister, maxraftstate)

    # You may need initialization code here.

    kv.applyCh = raft.Chan()
    kv.rf = raft.Make(servers, me, persister, kv.applyCh)

    # You may need initialization code here.

    return kv
