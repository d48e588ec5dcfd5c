"""The shard controller's clerk."""

import secrets
import time

from .common import (
    NShards,
    OK,
    JoinArgs,
    JoinReply,
    LeaveArgs,
    LeaveReply,
    MoveArgs,
    MoveReply,
    QueryArgs,
    QueryReply,
)

# After a round in which every server failed, pause this long before the next
# (the Go clerk's 100 ms), so that clerks waiting out an election do not spin.
RETRY_ROUND_PAUSE = 0.100


def nrand():
    """A random 62-bit client id."""
    return secrets.randbits(62)


class Clerk:
    def __init__(self, servers):
        self.servers = servers
        self.clientId = nrand()
        self.seqNum = 0
        self.leader = 0  # the server that answered last; tried first

    def Query(self, num):
        """Config number num, or the latest if num is -1 or beyond the latest."""
        _check_int("Query: num", num)
        reply = self._call("ShardCtrler.Query", QueryArgs(Num=num), QueryReply)
        return reply.Config

    def Join(self, servers):
        """Add the groups in servers, a dict gid -> list of server names."""
        if not isinstance(servers, dict):
            raise TypeError(f"Join: servers must be a dict gid -> server names, not {servers!r}")
        for gid, names in servers.items():
            _check_gid("Join", gid)
            if not isinstance(names, list) or not all(isinstance(s, str) for s in names):
                raise TypeError(f"Join: the servers of gid {gid} must be a list of names, not {names!r}")
        self._call("ShardCtrler.Join", JoinArgs(Servers=servers), JoinReply)

    def Leave(self, gids):
        """Remove the groups in the list gids."""
        if not isinstance(gids, list):
            raise TypeError(f"Leave: gids must be a list, not {gids!r}")
        for gid in gids:
            _check_gid("Leave", gid)
        self._call("ShardCtrler.Leave", LeaveArgs(GIDs=gids), LeaveReply)

    def Move(self, shard, gid):
        """Assign shard to group gid."""
        _check_int("Move: shard", shard)
        if not 0 <= shard < NShards:
            raise ValueError(f"Move: shard {shard} is not in [0, {NShards})")
        _check_gid("Move", gid)
        self._call("ShardCtrler.Move", MoveArgs(Shard=shard, GID=gid), MoveReply)

    def _call(self, svcMeth, args, reply_type):
        """Send the request until some server applies it; returns that server's reply.
        Tries the last known leader first, then every other server in turn."""
        self.seqNum += 1
        args.ClientId, args.SeqNum = self.clientId, self.seqNum
        while True:
            for _ in range(len(self.servers)):
                reply = reply_type()
                ok = self.servers[self.leader].Call(svcMeth, args, reply)
                if ok and not reply.WrongLeader and reply.Err == OK:
                    return reply
                self.leader = (self.leader + 1) % len(self.servers)
            time.sleep(RETRY_ROUND_PAUSE)


def _check_int(what, value):
    if type(value) is not int:
        raise TypeError(f"{what} must be an int, not {value!r}")


def _check_gid(op, gid):
    _check_int(f"{op}: gid", gid)
    if gid <= 0:
        raise ValueError(f"{op}: gid {gid} is not a valid group (gid 0 means no group)")


def MakeClerk(servers):
    return Clerk(servers)
