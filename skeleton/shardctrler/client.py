"""The shard controller's clerk."""

import secrets
import time

from .common import JoinArgs, JoinReply, LeaveArgs, LeaveReply, MoveArgs, MoveReply, QueryArgs, QueryReply


def nrand():
    """A random 62-bit number, handy as a client id."""
    return secrets.randbits(62)


class Clerk:
    def __init__(self, servers):
        self.servers = servers
        # You may add state here.

    def Query(self, num):
        args = QueryArgs()
        # Fill in any fields you added to QueryArgs.
        args.Num = num
        while True:
            # try each known server.
            for srv in self.servers:
                reply = QueryReply()
                ok = srv.Call("ShardCtrler.Query", args, reply)
                if ok and not reply.WrongLeader:
                    return reply.Config
            time.sleep(0.100)

    def Join(self, servers):
        args = JoinArgs()
        # Fill in any fields you added to JoinArgs.
        args.Servers = servers
        while True:
            # try each known server.
            for srv in self.servers:
                reply = JoinReply()
                ok = srv.Call("ShardCtrler.Join", args, reply)
                if ok and not reply.WrongLeader:
                    return
            time.sleep(0.100)

    def Leave(self, gids):
        args = LeaveArgs()
        # Fill in any fields you added to LeaveArgs.
        args.GIDs = gids
        while True:
            # try each known server.
            for srv in self.servers:
                reply = LeaveReply()
                ok = srv.Call("ShardCtrler.Leave", args, reply)
                if ok and not reply.WrongLeader:
                    return
            time.sleep(0.100)

    def Move(self, shard, gid):
        args = MoveArgs()
        # Fill in any fields you added to MoveArgs.
        args.Shard = shard
        args.GID = gid
        while True:
            # try each known server.
            for srv in self.servers:
                reply = MoveReply()
                ok = srv.Call("ShardCtrler.Move", args, reply)
                if ok and not reply.WrongLeader:
                    return
            time.sleep(0.100)


def MakeClerk(servers):
    ck = Clerk(servers)
    # You may add initialization here.
    return ck
