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
import time

import labgob
import raft
from raft.util import naming_entry, refuses

from .common import (
    OK,
    Config,
    ErrBadArgs,
    ErrNoGroup,
    ErrTimeout,
    ErrWrongLeader,
    NShards,
    check_join_args,
    check_leave_args,
    check_move_args,
    check_query_args,
)

# How often a waiting handler checks that its Raft still leads in the same term,
# and how long it waits for its entry before telling the clerk to try elsewhere.
LEADERSHIP_CHECK_INTERVAL = 0.050
APPLY_TIMEOUT = 1.0


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


class _Waiter:
    """A handler waiting for the entry it started at some log index."""

    __slots__ = ("op", "done", "err", "config")

    def __init__(self, op):
        self.op = op
        self.done = threading.Event()
        self.err = ErrWrongLeader
        self.config = None


class ShardCtrler:
    def __init__(self, servers, me, persister):
        self.mu = threading.Lock()
        self.me = me
        self.dead = False  # set by Kill()
        self.applyCh = raft.Chan()

        self.configs = [Config()]  # indexed by config number; config 0 has no groups
        self.lastSeq = {}  # client id -> (SeqNum, Err) of its last Join/Leave/Move applied
        self.lastApplied = 0
        self.waiters = {}  # log index -> [_Waiter]

        self.rf = raft.Make(servers, me, persister, self.applyCh)
        self._applier = threading.Thread(target=self.applier, name=f"ctrler{me}-applier", daemon=True)
        self._applier.start()

    # ---- RPC handlers ---------------------------------------------------------------

    def Join(self, args, reply):
        if self._refused(check_join_args, args, reply):
            return
        op = Op("Join", Servers=args.Servers, ClientId=args.ClientId, SeqNum=args.SeqNum)
        reply.Err, _ = self._submit(op)
        # Any error, a timeout too, is WrongLeader: a Go-style clerk reads only that field
        reply.WrongLeader = reply.Err != OK

    def Leave(self, args, reply):
        if self._refused(check_leave_args, args, reply):
            return
        op = Op("Leave", GIDs=args.GIDs, ClientId=args.ClientId, SeqNum=args.SeqNum)
        reply.Err, _ = self._submit(op)
        reply.WrongLeader = reply.Err != OK  # see Join

    def Move(self, args, reply):
        if self._refused(check_move_args, args, reply):
            return
        op = Op("Move", Shard=args.Shard, GID=args.GID, ClientId=args.ClientId, SeqNum=args.SeqNum)
        reply.Err, _ = self._submit(op)  # ErrNoGroup if GID is not a group when applied
        reply.WrongLeader = reply.Err != OK  # see Join

    def Query(self, args, reply):
        if self._refused(check_query_args, args, reply):
            return
        with self.mu:
            if 0 <= args.Num < len(self.configs):
                reply.Err, reply.Config = OK, self.configs[args.Num]
                return
        reply.Err, config = self._submit(Op("Query", Num=args.Num, ClientId=args.ClientId, SeqNum=args.SeqNum))
        reply.WrongLeader = reply.Err != OK  # see Join
        if config is not None:
            reply.Config = config

    def _refused(self, check, args, reply):
        """True (and reply filled in) if args has fields of the wrong types, which Go's
        labrpc could not even decode: in the log they would kill every replica's
        applier (see raft.util)."""
        if not refuses(check, args, self.me):
            return False
        reply.Err, reply.WrongLeader = ErrBadArgs, True  # see Join
        return True

    def _submit(self, op):
        """Start op in Raft and wait until it is applied; returns (Err, Config or None)."""
        if self.killed():
            return ErrWrongLeader, None
        w = _Waiter(op)
        with self.mu:
            # Start under mu: the applier takes mu before it looks for the waiters of
            # an index, so it cannot apply our entry before we are registered.
            index, term, isLeader = self.rf.Start(op)
            if not isLeader:
                return ErrWrongLeader, None
            self.waiters.setdefault(index, []).append(w)
        deadline = time.monotonic() + APPLY_TIMEOUT
        gaveUp = ErrWrongLeader
        while not w.done.wait(LEADERSHIP_CHECK_INTERVAL):
            # Lost leadership, or a newer term: our entry may never commit.
            if self.killed() or self.rf.GetState() != (term, True):
                break
            if time.monotonic() >= deadline:
                gaveUp = ErrTimeout
                break
        with self.mu:
            # The applier fills w under mu, so it either has (done is set) or never will.
            if w.done.is_set():
                return w.err, w.config
            pending = self.waiters.get(index)
            if pending is not None and w in pending:
                pending.remove(w)
                if not pending:
                    del self.waiters[index]
        return gaveUp, None

    # ---- applying the log -------------------------------------------------------------

    def applier(self):
        # No snapshot ever comes: the controller never calls Snapshot, so Raft
        # sends only commands.
        for msg in self.applyCh:
            if not msg.CommandValid:
                continue
            with self.mu:
                if msg.CommandIndex <= self.lastApplied:
                    continue
                self.lastApplied = msg.CommandIndex
                op = msg.Command
                with naming_entry(f"shardctrler {self.me}", msg.CommandIndex, op):
                    err, config = self._apply(op)
                for w in self.waiters.pop(msg.CommandIndex, ()):
                    if w.op.ClientId == op.ClientId and w.op.SeqNum == op.SeqNum:
                        w.err, w.config = err, config
                    # else: another leader's entry took this index; the clerk retries
                    w.done.set()

    def _apply(self, op):
        """Apply op (caller holds mu); returns (Err, Config or None)."""
        if op.Kind == "Query":
            if 0 <= op.Num < len(self.configs):
                return OK, self.configs[op.Num]
            return OK, self.configs[-1]
        last = self.lastSeq.get(op.ClientId)
        if last is not None and op.SeqNum <= last[0]:
            return last[1], None  # a retry of a request already applied
        err = OK
        latest = self.configs[-1]
        if op.Kind == "Join":
            config = latest.copy()
            for gid, names in op.Servers.items():
                config.Groups[gid] = list(names)  # the Op may be shared with Raft's log
            _rebalance(config)
        elif op.Kind == "Leave":
            config = latest.copy()
            for gid in op.GIDs:
                config.Groups.pop(gid, None)
            _rebalance(config)
        elif op.Kind == "Move":
            config = latest.copy()
            if op.GID in config.Groups:
                config.Shards[op.Shard] = op.GID
            else:
                err, config = ErrNoGroup, None
        else:
            raise ValueError(f"shardctrler {self.me}: unknown op {op.Kind!r} in the log")
        if config is not None:
            config.Num = len(self.configs)
            self.configs.append(config)
        self.lastSeq[op.ClientId] = (op.SeqNum, err)
        return err, None

    # ---- lifecycle ----------------------------------------------------------------------

    def Kill(self):
        """Stop the server and its Raft; every thread they started ends."""
        self.dead = True
        self.rf.Kill()
        # Closing applyCh ends our applier and releases Raft's, which may be blocked sending.
        self.applyCh.close()
        with self.mu:
            for ws in self.waiters.values():
                for w in ws:
                    w.done.set()
            self.waiters.clear()

    def killed(self):
        return self.dead

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
