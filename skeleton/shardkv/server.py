"""The sharded key/value server: one replica of a group, on Raft."""

import dataclasses
import threading

import raft

from .common import register


@register
@dataclasses.dataclass
class Op:
    """A log entry.  Add the fields your requests need; give every field a default
    and start each name with a capital letter."""


class ShardKV:
    def __init__(self, servers, me, persister, maxraftstate, gid, ctrlers, make_end):
        # Register with labgob (the register decorator of common.py) every
        # dataclass you send through RPC or store in the Raft log.
        self.mu = threading.Lock()
        self.me = me
        self.maxraftstate = maxraftstate  # snapshot if the Raft state grows this big (-1: never)
        self.make_end = make_end
        self.gid = gid
        self.ctrlers = ctrlers

        # Add your own state and initialization here.

        # Talk to the shard controller through a clerk such as
        #     self.mck = shardctrler.MakeClerk(self.ctrlers)
        # but remember that its calls retry forever: a thread stuck in one
        # after Kill() would be left running.

        self.applyCh = raft.Chan()
        self.rf = raft.Make(servers, me, persister, self.applyCh)

        # Start a thread for any long-running work: StartServer must return at once.

    def Get(self, args, reply):
        pass  # your code here

    def PutAppend(self, args, reply):
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


def StartServer(servers, me, persister, maxraftstate, gid, ctrlers, make_end):
    """servers are the ends of the servers in this group; me is this server's
    index in servers.

    Store snapshots through Raft (rf.Snapshot), which saves the Raft state and
    the snapshot together with persister.Save().  Snapshot when Raft's saved
    state exceeds maxraftstate bytes, so that Raft can discard its log; with
    maxraftstate -1 you need not snapshot.

    gid is this group's gid, for talking to the shard controller; pass ctrlers
    to shardctrler.MakeClerk() to send RPCs to the controller.  make_end(name)
    turns a server name from Config.Groups[gid] into an end on which you can
    send RPCs: you need it to talk to other groups.  client.py shows how to use
    ctrlers and make_end to reach the group that owns a shard.

    StartServer must return quickly: start threads for long-running work."""
    return ShardKV(servers, me, persister, maxraftstate, gid, ctrlers, make_end)
