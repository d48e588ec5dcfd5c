"""The shard controller server: a replicated state machine on Raft."""

import dataclasses
import threading

import labgob
import raft

from .common import Config


@dataclasses.dataclass
class Op:
    """A log entry.  Add the fields your requests need; give every field a default."""


labgob.RegisterName("shardctrler.Op", Op)


class ShardCtrler:
    def __init__(self, servers, me, persister):
        self.mu = threading.Lock()
        self.me = me

        # Add your own state here.

        self.configs = [Config()]  # indexed by config number; config 0 has no groups

        self.applyCh = raft.Chan()
        self.rf = raft.Make(servers, me, persister, self.applyCh)

        # Add your initialization here.  Start a thread for any long-running
        # work (reading applyCh, say): StartServer must return at once.

    def Join(self, args, reply):
        pass  # your code here

    def Leave(self, args, reply):
        pass  # your code here

    def Move(self, args, reply):
        pass  # your code here

    def Query(self, args, reply):
        pass  # your code here

    def Kill(self):
        """The tester calls Kill() when this instance will not be needed again.
        The code given is all Kill() strictly needs, but more may be handy, for
        example turning off this instance's debug output.  Every thread you started must end soon after:
        the tests check that none is left running, and name those that are.
        Closing applyCh ends a `for msg in self.applyCh` loop and releases a
        Raft blocked sending on it; wake any handler waiting for its command."""
        self.rf.Kill()
        # Your code here, if desired.

    def Raft(self):
        """The shardkv tester needs this."""
        return self.rf


def StartServer(servers, me, persister):
    """servers holds the ends of all the controllers that cooperate through Raft
    to form the fault-tolerant service; me is this server's index in servers."""
    return ShardCtrler(servers, me, persister)
