"""The clerk: client code for the sharded key/value service.

The clerk first asks the shard controller which group serves each shard (and so
each key), then talks to the group that holds the key's shard.
"""

import secrets
import time

import shardctrler

from .common import OK, ErrNoKey, ErrWrongGroup, GetArgs, GetReply, PutAppendArgs, PutAppendReply


def key2shard(key):
    """The shard a key belongs to.  Use this function, and do not change it."""
    shard = 0
    if len(key) > 0:
        shard = key.encode()[0]
    shard %= shardctrler.NShards
    return shard


def nrand():
    """A random 62-bit number, handy as a client id."""
    return secrets.randbits(62)


class Clerk:
    def __init__(self, ctrlers, make_end):
        self.sm = shardctrler.MakeClerk(ctrlers)
        self.config = shardctrler.Config()
        self.make_end = make_end
        # You will have to add state here.

    def Get(self, key):
        """Fetch the current value for a key; "" if the key does not exist.
        Keeps trying forever in the face of all other errors.
        You will have to modify this function."""
        args = GetArgs()
        args.Key = key

        while True:
            shard = key2shard(key)
            gid = self.config.Shards[shard]
            servers = self.config.Groups.get(gid)
            if servers is not None:
                # try each server of the shard's group
                for si in range(len(servers)):
                    srv = self.make_end(servers[si])
                    reply = GetReply()
                    ok = srv.Call("ShardKV.Get", args, reply)
                    if ok and reply.Err in (OK, ErrNoKey):
                        return reply.Value
                    if ok and reply.Err == ErrWrongGroup:
                        break
                    # ... no reply, or ErrWrongLeader
            time.sleep(0.100)
            # ask the controller for the latest configuration
            self.config = self.sm.Query(-1)

    def PutAppend(self, key, value, op):
        """Shared by Put and Append.  You will have to modify this function."""
        args = PutAppendArgs()
        args.Key = key
        args.Value = value
        args.Op = op

        while True:
            shard = key2shard(key)
            gid = self.config.Shards[shard]
            servers = self.config.Groups.get(gid)
            if servers is not None:
                for si in range(len(servers)):
                    srv = self.make_end(servers[si])
                    reply = PutAppendReply()
                    ok = srv.Call("ShardKV.PutAppend", args, reply)
                    if ok and reply.Err == OK:
                        return
                    if ok and reply.Err == ErrWrongGroup:
                        break
                    # ... no reply, or ErrWrongLeader
            time.sleep(0.100)
            # ask the controller for the latest configuration
            self.config = self.sm.Query(-1)

    def Put(self, key, value):
        self.PutAppend(key, value, "Put")

    def Append(self, key, value):
        self.PutAppend(key, value, "Append")


def MakeClerk(ctrlers, make_end):
    """The tester calls MakeClerk.  ctrlers are the ends for
    shardctrler.MakeClerk(); make_end(servername) turns a server name from
    Config.Groups[gid] into an end on which you can send RPCs."""
    return Clerk(ctrlers, make_end)
