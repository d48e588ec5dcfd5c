"""The clerk: the client side of the sharded key/value service.

It asks the shard controller which group serves a key's shard, then talks to
that group; when the group says the shard is not its own, it asks the
controller again.
"""

import secrets
import time

import shardctrler

from .common import OK, ErrBadArgs, ErrNoKey, ErrWrongGroup, GetArgs, GetReply, PutAppendArgs, PutAppendReply
from .common import check_get_args, check_put_append_args

# After trying every server of the group (or finding no group), wait this long
# before asking the controller for the latest configuration.
RETRY_INTERVAL = 0.100


def key2shard(key):
    """The shard a key belongs to: its first byte modulo NShards (shard 0 for "")."""
    shard = 0
    if len(key) > 0:
        shard = key.encode()[0]
    shard %= shardctrler.NShards
    return shard


def nrand():
    """A random 62-bit client id."""
    return secrets.randbits(62)


class Clerk:
    def __init__(self, ctrlers, make_end):
        if not ctrlers:
            raise ValueError("shardkv.MakeClerk: no shard controllers (the list of ends is empty)")
        self.sm = shardctrler.MakeClerk(ctrlers)
        self.config = shardctrler.Config()  # Num 0, every shard on the invalid gid 0
        self.make_end = make_end
        self.clientId = nrand()
        self.seqNum = 0
        self.leader = {}  # gid -> index of the server that answered last
        self.ends = {}  # server name -> end, made once

    def _end(self, name):
        end = self.ends.get(name)
        if end is None:
            end = self.ends[name] = self.make_end(name)
        return end

    def _call(self, key, svcMeth, args, reply_type, done):
        """Send the request to the group that serves key until a reply satisfies done."""
        shard = key2shard(key)
        while True:
            gid = self.config.Shards[shard]
            servers = self.config.Groups.get(gid)
            stale = not servers  # our configuration names no group for the shard
            if servers:
                first = self.leader.get(gid, 0)
                for k in range(len(servers)):
                    si = (first + k) % len(servers)
                    reply = reply_type()
                    ok = self._end(servers[si]).Call(svcMeth, args, reply)
                    if ok and done(reply.Err):
                        self.leader[gid] = si
                        return reply
                    if ok and reply.Err == ErrWrongGroup:
                        stale = True
                        break
                    if ok and reply.Err == ErrBadArgs:
                        # The server checks what we checked: retrying could never succeed.
                        raise TypeError(f"{svcMeth}: server {servers[si]} refused the request's argument types")
                    # no reply, or the server is not the leader (or timed out)
            # When the group disowns the shard, a newer configuration may already
            # say where it went: look at once, and wait only if there is none.
            if stale and self._refresh():
                continue
            time.sleep(RETRY_INTERVAL)
            self._refresh()

    def _refresh(self):
        """Ask the controller for the latest configuration; True if it is new to us."""
        config = self.sm.Query(-1)
        changed = config.Num != self.config.Num
        self.config = config
        return changed

    def Get(self, key):
        """The current value for a key; "" if the key does not exist.
        Keeps trying forever in the face of all other errors."""
        args = GetArgs(Key=key, ClientId=self.clientId, SeqNum=self.seqNum + 1)
        check_get_args(args)  # Go's compiler checks the types; we must, before sending
        self.seqNum += 1
        reply = self._call(key, "ShardKV.Get", args, GetReply, lambda err: err in (OK, ErrNoKey))
        return reply.Value

    def PutAppend(self, key, value, op):
        """Shared by Put and Append."""
        args = PutAppendArgs(Key=key, Value=value, Op=op, ClientId=self.clientId, SeqNum=self.seqNum + 1)
        check_put_append_args(args)  # Go's compiler checks the types; we must, before sending
        self.seqNum += 1
        self._call(key, "ShardKV.PutAppend", args, PutAppendReply, lambda err: err == OK)

    def Put(self, key, value):
        self.PutAppend(key, value, "Put")

    def Append(self, key, value):
        self.PutAppend(key, value, "Append")


def MakeClerk(ctrlers, make_end):
    """ctrlers are ends to the shard controllers; make_end(servername) turns a
    name from Config.Groups into an end on which to send RPCs."""
    return Clerk(ctrlers, make_end)
