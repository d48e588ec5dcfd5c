"""The shard controller's clerk."""

import secrets
import time

from .common import (
    OK,
    ErrBadArgs,
    ErrNoGroup,
    JoinArgs,
    JoinReply,
    LeaveArgs,
    LeaveReply,
    MoveArgs,
    MoveReply,
    QueryArgs,
    QueryReply,
    check_join_args,
    check_leave_args,
    check_move_args,
    check_query_args,
)

# After a round in which every server failed, pause this long before the next
# (the Go clerk's 100 ms), so that clerks waiting out an election do not spin.
RETRY_ROUND_PAUSE = 0.100


def nrand():
    """A random 62-bit client id."""
    return secrets.randbits(62)


class Clerk:
    def __init__(self, servers):
        if not servers:
            raise ValueError("shardctrler.MakeClerk: no servers (the list of ends is empty)")
        self.servers = servers
        self.clientId = nrand()
        self.seqNum = 0
        self.leader = 0  # the server that answered last; tried first

    def Query(self, num):
        """Config number num, or the latest if num is -1 or beyond the latest."""
        reply = self._call("ShardCtrler.Query", QueryArgs(Num=num), check_query_args, QueryReply)
        return reply.Config

    def Join(self, servers):
        """Add the groups in servers, a dict gid -> list of server names."""
        self._call("ShardCtrler.Join", JoinArgs(Servers=servers), check_join_args, JoinReply)

    def Leave(self, gids):
        """Remove the groups in the list gids."""
        self._call("ShardCtrler.Leave", LeaveArgs(GIDs=gids), check_leave_args, LeaveReply)

    def Move(self, shard, gid):
        """Assign shard to group gid, which must be a group of the latest config."""
        self._call("ShardCtrler.Move", MoveArgs(Shard=shard, GID=gid), check_move_args, MoveReply)

    def _call(self, svcMeth, args, check, reply_type):
        """Send the request until some server applies it; returns that server's reply.
        Tries the last known leader first, then every other server in turn."""
        check(args)  # Go's compiler checks the types; we must, before sending
        self.seqNum += 1
        args.ClientId, args.SeqNum = self.clientId, self.seqNum
        while True:
            for _ in range(len(self.servers)):
                reply = reply_type()
                ok = self.servers[self.leader].Call(svcMeth, args, reply)
                if ok and not reply.WrongLeader and reply.Err == OK:
                    return reply
                if ok and reply.Err == ErrNoGroup:
                    raise ValueError(f"Move: gid {args.GID} is not a group of the latest config")
                if ok and reply.Err == ErrBadArgs:
                    # The server checks what we checked: retrying could never succeed.
                    raise TypeError(f"{svcMeth}: server {self.leader} refused the request's argument types")
                self.leader = (self.leader + 1) % len(self.servers)
            time.sleep(RETRY_ROUND_PAUSE)


def MakeClerk(servers):
    return Clerk(servers)
