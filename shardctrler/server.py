"""The shard controller: a replicated state machine on Raft whose state is the
list of every Config so far.

Every Join, Leave and Move goes through the Raft log and makes a new Config.
A Query for the latest config goes through the log too, so that it reflects
every request that finished before it; a Query for a config that this replica
already holds is answered at once, since a Config never changes once made.
Each clerk numbers its requests, and the number of the last one applied per
clerk is part of the replicated state, so a retried request is applied once.

The controller never snapshots (there is no maxraftstate): a restarted server
rebuilds its configs by replaying the whole log.
"""

import dataclasses
import threading

import labgob
import rsm
from raft.util import refuses

from .common import (
    OK,
    Config,
    ErrBadArgs,
    ErrNoGroup,
    NShards,
    check_join_args,
    check_leave_args,
    check_move_args,
    check_query_args,
)


@dataclasses.dataclass
class Op:
    """A log entry: one clerk request."""

    Kind: str = ""  # "Join", "Leave", "Move" or "Query"
    Servers: dict = dataclasses.field(default_factory=dict)  # Join: gid -> server names
    GIDs: list = dataclasses.field(default_factory=list)  # Leave
    Shard: int = 0  # Move
    GID: int = 0  # Move
    Num: int = 0  # Query
    ClientId: int = 0
    SeqNum: int = 0


labgob.RegisterName("shardctrler.Op", Op)


class ShardCtrler:
    def __init__(self, servers, me, persister):
        self.mu = threading.Lock()  # the applier holds it in DoOp
        self.me = me
        self.configs = [Config()]  # indexed by config number; config 0 has no groups
        self.lastSeq = {}  # client id -> SeqNum of its last Join/Leave/Move applied
        self.lastErr = {}  # client id -> the Err that request got, for a retry of it
        self.rsm = rsm.MakeRSM(servers, me, persister, -1, self, f"ctrler{me}", f"shardctrler {me}")
        self.rf = self.rsm.Raft()

    # ---- RPC handlers ---------------------------------------------------------------

    def Join(self, args, reply):
        if not self._refused(check_join_args, args, reply):
            self._submit(Op("Join", Servers=args.Servers), args, reply)

    def Leave(self, args, reply):
        if not self._refused(check_leave_args, args, reply):
            self._submit(Op("Leave", GIDs=args.GIDs), args, reply)

    def Move(self, args, reply):
        if not self._refused(check_move_args, args, reply):
            # ErrNoGroup if GID is not a group when the Move is applied
            self._submit(Op("Move", Shard=args.Shard, GID=args.GID), args, reply)

    def Query(self, args, reply):
        if self._refused(check_query_args, args, reply):
            return
        with self.mu:
            if 0 <= args.Num < len(self.configs):
                reply.Err, reply.Config = OK, self.configs[args.Num]
                return
        self._submit(Op("Query", Num=args.Num), args, reply)

    def _refused(self, check, args, reply):
        """True (and reply filled in) if args has fields of the wrong types, which Go's
        labrpc could not even decode: in the log they would kill every replica's
        applier (see raft.util)."""
        if not refuses(check, args, self.me):
            return False
        reply.Err, reply.WrongLeader = ErrBadArgs, True  # see _submit
        return True

    def _submit(self, op, args, reply):
        op.ClientId, op.SeqNum = args.ClientId, args.SeqNum
        reply.Err, config = self.rsm.Submit(op)
        # Any error, a timeout too, is WrongLeader: a Go-style clerk reads only that field.
        reply.WrongLeader = reply.Err != OK
        if config is not None:
            reply.Config = config

    # ---- the state machine (the applier calls DoOp holding mu; it never snapshots) ----------

    def DoOp(self, op):
        """Apply op; returns (Err, Config or None)."""
        if op.Kind == "Query":
            if 0 <= op.Num < len(self.configs):
                return OK, self.configs[op.Num]
            return OK, self.configs[-1]
        if not rsm.fresh(self.lastSeq, op.ClientId, op.SeqNum):
            return self.lastErr.get(op.ClientId, OK), None  # a retry of a request already applied
        err = OK
        config = self.configs[-1].copy()
        if op.Kind == "Join":
            for gid, names in op.Servers.items():
                config.Groups[gid] = list(names)  # the Op may be shared with Raft's log
            _rebalance(config)
        elif op.Kind == "Leave":
            for gid in op.GIDs:
                config.Groups.pop(gid, None)
            _rebalance(config)
        elif op.Kind == "Move":
            if op.GID in config.Groups:
                config.Shards[op.Shard] = op.GID
            else:
                err, config = ErrNoGroup, None
        else:
            raise ValueError(f"shardctrler {self.me}: unknown op {op.Kind!r} in the log")
        if config is not None:
            config.Num = len(self.configs)
            self.configs.append(config)
        self.lastErr[op.ClientId] = err
        return err, None

    # ---- lifecycle ----------------------------------------------------------------------

    def Kill(self):
        """Stop the server and its Raft; every thread they started ends."""
        self.rsm.Kill()

    def killed(self):
        return self.rsm.killed()

    def Raft(self):
        """This server's Raft peer (the shardkv tester needs it)."""
        return self.rf


def _rebalance(config):
    """Spread the shards over config's groups as evenly as possible, moving as few
    as possible.  The result depends only on the config's contents (never on dict
    order), so every replica computes the same one."""
    gids = sorted(config.Groups)
    if not gids:
        config.Shards = [0] * NShards
        return
    owned = {gid: [] for gid in gids}
    free = []  # shards of no current group
    for shard, gid in enumerate(config.Shards):
        (owned[gid] if gid in owned else free).append(shard)
    # Every group gets base shards and `extra` groups one more. The extras go to the
    # groups that hold the most already (ties: lower gid), so they give up fewest.
    base, extra = divmod(NShards, len(gids))
    by_load = sorted(gids, key=lambda g: (-len(owned[g]), g))
    target = {gid: base + (1 if k < extra else 0) for k, gid in enumerate(by_load)}
    for gid in gids:
        free.extend(owned[gid][target[gid]:])
        del owned[gid][target[gid]:]
    free.sort()
    for gid in gids:
        while len(owned[gid]) < target[gid]:
            owned[gid].append(free.pop(0))
    for gid in gids:
        for shard in owned[gid]:
            config.Shards[shard] = gid


def StartServer(servers, me, persister):
    """servers holds the ends of all the controllers that cooperate through Raft
    to form the fault-tolerant service; me is this server's index.  Returns at
    once, with the server's threads running."""
    return ShardCtrler(servers, me, persister)
