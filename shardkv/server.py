"""The sharded key/value server: one replica of a group, a state machine on Raft.

Every change to a group's state goes through its Raft log, so all replicas
make the same changes in the same order:

  Op             a clerk's Get, Put or Append
  ConfigOp       move to the next configuration (one at a time, in order)
  InsertShardsOp shards pulled from their previous owner
  DeleteShardsOp a shard hand-over is finished: the previous owner drops the
                 shard, the new owner stops asking it to
  EmptyOp        a new leader's first entry, so that entries of earlier terms
                 commit even when no clerk sends anything

Each shard has a status.  A shard the group gains in a new configuration is
PULLING until its data arrives, then GCING (served, while the previous owner is
asked to delete its copy), then SERVING.  A shard the group loses is BEPULLING
(frozen, kept for the new owner) until the new owner reports that it has the
data; then it is deleted.  The group serves a key when the current
configuration assigns its shard to the group and the shard is SERVING or
GCING, so shards not in transit keep being served during a configuration
change, and a shard is served as soon as it arrives.  A group moves to the
next configuration only once every shard is SERVING.

Each shard carries the last request number applied per clerk, and that table
moves with the shard, so a request is applied at most once even if the clerk
retries it at the new owner.

Threads, all ending after Kill(): the applier, the configuration poller (which
also starts a new leader's EmptyOp), the puller and the garbage collector; the
last three act only while their replica leads, and start a short-lived thread
per other group when they must talk to several groups at once.
"""

import dataclasses
import threading

import rsm
import shardctrler
from raft.util import DPrintf, Debug, check_str, refuses

from .client import key2shard
from .common import (
    OK,
    DeleteShardsArgs,
    DeleteShardsReply,
    ErrBadArgs,
    ErrNoKey,
    ErrNotReady,
    ErrWrongGroup,
    ErrWrongLeader,
    PullShardsArgs,
    PullShardsReply,
    check_delete_shards_args,
    check_get_args,
    check_pull_shards_args,
    check_put_append_args,
    register,
)

NShards = shardctrler.NShards

# How often the leader asks the controller for the next configuration (the lab
# says about every 100 ms), and how often it retries pulling and deleting shards.
POLL_INTERVAL = 0.100
MIGRATE_INTERVAL = 0.050
SERVING, PULLING, BEPULLING, GCING = "Serving", "Pulling", "BePulling", "GCing"


@register
@dataclasses.dataclass
class Op:
    """A clerk request."""

    Kind: str = ""  # "Get", "Put" or "Append"
    Key: str = ""
    Value: str = ""
    ClientId: int = 0
    SeqNum: int = 0


@register
@dataclasses.dataclass
class ConfigOp:
    Config: object = None  # a shardctrler.Config numbered one above the group's


@register
@dataclasses.dataclass
class InsertShardsOp:
    ConfigNum: int = 0
    Data: dict = dataclasses.field(default_factory=dict)  # shard -> {key: value}
    LastSeq: dict = dataclasses.field(default_factory=dict)  # shard -> {client id: SeqNum}


@register
@dataclasses.dataclass
class DeleteShardsOp:
    ConfigNum: int = 0
    Shards: list = dataclasses.field(default_factory=list)


@register
@dataclasses.dataclass
class EmptyOp:
    pass


class ShardKV:
    def __init__(self, servers, me, persister, maxraftstate, gid, ctrlers, make_end):
        self.mu = threading.Lock()  # the applier holds it in DoOp, Snapshot and Restore
        self.me = me
        self.make_end = make_end
        self.gid = gid
        self.ctrlers = ctrlers
        self._killed = threading.Event()

        self.config = shardctrler.Config()  # the configuration the group is in
        self.lastConfig = shardctrler.Config()  # the one before: who held our new shards
        self.status = [SERVING] * NShards
        self.data = [{} for _ in range(NShards)]  # shard -> {key: value}
        self.lastSeq = [{} for _ in range(NShards)]  # shard -> {client id: highest SeqNum applied}
        self.ends = {}  # server name -> end to it, made once
        self.ctrlerLeader = 0  # the controller that answered last
        self.noopTerm = -1  # the last term in which this replica started its EmptyOp

        name = f"skv{gid}-{me}"
        self.snapshot_due = False  # see DoOp
        self.rsm = rsm.MakeRSM(servers, me, persister, maxraftstate, self, name, f"shardkv {gid}-{me}")
        self.rf = self.rsm.Raft()
        for what, interval, fn in (("poller", POLL_INTERVAL, self._pollConfig),
                                   ("puller", MIGRATE_INTERVAL, self._pullShards),
                                   ("gc", MIGRATE_INTERVAL, self._deleteShards)):
            threading.Thread(target=self._every, args=(interval, fn), name=f"{name}-{what}", daemon=True).start()

    # ---- clerk RPC handlers -----------------------------------------------------------

    def Get(self, args, reply):
        if self._refused(check_get_args, args):
            reply.Err = ErrBadArgs
            return
        reply.Err, value = self._clerkOp(Op("Get", args.Key, "", args.ClientId, args.SeqNum))
        if value is not None:
            reply.Value = value

    def PutAppend(self, args, reply):
        if self._refused(check_put_append_args, args):
            reply.Err = ErrBadArgs
            return
        reply.Err, _ = self._clerkOp(Op(args.Op, args.Key, args.Value, args.ClientId, args.SeqNum))

    def _refused(self, check, args):
        """True if args has fields of the wrong types, which Go's labrpc could not even
        decode: in the log they would kill every replica's applier (see raft.util)."""
        return refuses(check, args, self.me, f"g{self.gid} ")

    def _clerkOp(self, op):
        _, isLeader = self.rf.GetState()
        if not isLeader:
            return ErrWrongLeader, ""
        shard = key2shard(op.Key)
        with self.mu:
            if not self._canServe(shard):
                return ErrWrongGroup, ""
            if op.Kind != "Get" and op.SeqNum <= self.lastSeq[shard].get(op.ClientId, 0):
                return OK, ""  # a retry of a request already applied
        return self.rsm.Submit(op)

    def _canServe(self, shard):
        return self.config.Shards[shard] == self.gid and self.status[shard] in (SERVING, GCING)

    # ---- group-to-group RPC handlers ----------------------------------------------------

    def PullShards(self, args, reply):
        """Hand out copies of shards the caller gained in configuration args.ConfigNum.

        Any replica may answer once it has reached that configuration: from then on
        the shards are frozen here until the caller, having stored them, asks for
        their deletion (so a replica that is further along only answers stale
        requests, whose data the caller's log order makes it ignore)."""
        if self._refused(check_pull_shards_args, args):
            reply.Err = ErrBadArgs
            return
        with self.mu:
            if self.config.Num < args.ConfigNum:
                reply.Err = ErrNotReady
                return
            for s in args.Shards:
                reply.Data[s] = dict(self.data[s])
                reply.LastSeq[s] = dict(self.lastSeq[s])
            reply.ConfigNum = args.ConfigNum
            reply.Err = OK

    def DeleteShards(self, args, reply):
        """The caller has stored the shards it pulled for configuration args.ConfigNum:
        drop our copies once that is in our log."""
        if self._refused(check_delete_shards_args, args):
            reply.Err = ErrBadArgs
            return
        _, isLeader = self.rf.GetState()
        if not isLeader:
            reply.Err = ErrWrongLeader
            return
        with self.mu:
            if self.config.Num > args.ConfigNum:
                reply.Err = OK  # done already: we could not have moved on otherwise
                return
            if self.config.Num < args.ConfigNum:
                reply.Err = ErrNotReady
                return
        reply.Err, _ = self.rsm.Submit(DeleteShardsOp(args.ConfigNum, list(args.Shards)))

    # ---- the leader's background work -------------------------------------------------

    def _every(self, interval, fn):
        while not self._killed.wait(interval):
            fn()

    def _pollConfig(self):
        term, isLeader = self.rf.GetState()
        if not isLeader:
            return
        if term != self.noopTerm:
            # A new leader commits entries of earlier terms only through one of its own.
            self.noopTerm = term
            self.rf.Start(EmptyOp())
        with self.mu:
            if any(st != SERVING for st in self.status):
                return  # the current hand-over is not finished
            num = self.config.Num + 1
        cfg = self._queryCtrler(num)
        if cfg is not None and cfg.Num == num:
            self.rf.Start(ConfigOp(cfg))

    def _queryCtrler(self, num):
        """One round over the controllers; None if none answered as leader.
        (The controller's clerk retries forever, which a killed server must not.)"""
        n = len(self.ctrlers)
        for k in range(n):
            i = (self.ctrlerLeader + k) % n
            reply = shardctrler.QueryReply()
            ok = self.ctrlers[i].Call("ShardCtrler.Query", shardctrler.QueryArgs(Num=num), reply)
            if ok and not reply.WrongLeader and reply.Err == shardctrler.OK:
                self.ctrlerLeader = i
                return reply.Config
            if self._killed.is_set():
                break
        return None

    def _shardsFrom(self, status):
        """For the shards in status: {previous owner's gid: (its servers, [shards])}."""
        if not self.rf.GetState()[1]:
            return {}, 0
        with self.mu:
            byGid = {}
            for s in range(NShards):
                if self.status[s] == status:
                    gid = self.lastConfig.Shards[s]
                    byGid.setdefault(gid, (self.lastConfig.Groups.get(gid, []), []))[1].append(s)
            return byGid, self.config.Num

    def _forEachGroup(self, byGid, fn, num):
        if len(byGid) == 1:
            (servers, shards), = byGid.values()
            fn(servers, shards, num)
            return
        ths = [threading.Thread(target=fn, args=(servers, shards, num), name=f"skv{self.gid}-{self.me}-migrate", daemon=True)
               for servers, shards in byGid.values()]
        for th in ths:
            th.start()
        for th in ths:
            th.join()

    def _pullShards(self):
        byGid, num = self._shardsFrom(PULLING)
        if byGid:
            self._forEachGroup(byGid, self._pullFrom, num)

    def _pullFrom(self, servers, shards, num):
        args = PullShardsArgs(ConfigNum=num, Shards=shards)
        for name in servers:
            if self._killed.is_set():
                return
            reply = PullShardsReply()
            if self._end(name).Call("ShardKV.PullShards", args, reply) and reply.Err == OK:
                self.rf.Start(InsertShardsOp(num, reply.Data, reply.LastSeq))
                return

    def _deleteShards(self):
        byGid, num = self._shardsFrom(GCING)
        if byGid:
            self._forEachGroup(byGid, self._deleteAt, num)

    def _deleteAt(self, servers, shards, num):
        args = DeleteShardsArgs(ConfigNum=num, Shards=shards)
        for name in servers:
            if self._killed.is_set():
                return
            reply = DeleteShardsReply()
            if self._end(name).Call("ShardKV.DeleteShards", args, reply) and reply.Err == OK:
                self.rf.Start(DeleteShardsOp(num, shards))
                return

    def _end(self, name):
        # The gc and migration threads both fill the map (in Go, concurrent map writes
        # are fatal); make_end takes only the network's own lock, so it may run under ours.
        with self.mu:
            end = self.ends.get(name)
            if end is None:
                end = self.ends[name] = self.make_end(name)
            return end

    # ---- applying the log -----------------------------------------------------------------

    def DoOp(self, cmd):
        """Apply one entry; returns (Err, value).  The applier snapshots right after
        an entry that drops the data of shards given away: else the persisted snapshot
        keeps their data until the next one, however long the group then stays idle."""
        t = type(cmd)
        if t is Op:
            return self._applyOp(cmd)
        if t is ConfigOp:
            self.snapshot_due |= self._applyConfig(cmd.Config)
        elif t is InsertShardsOp:
            self._applyInsert(cmd)
        elif t is DeleteShardsOp:
            self.snapshot_due |= self._applyDelete(cmd)
        elif t is not EmptyOp:
            raise TypeError(f"shardkv {self.gid}-{self.me}: unknown log entry {cmd!r}")
        return OK, ""

    def _applyOp(self, op):
        check_str(f"{op.Kind}: key", op.Key)  # see kvraft's DoOp
        check_str(f"{op.Kind}: value", op.Value)
        shard = key2shard(op.Key)
        if not self._canServe(shard):
            return ErrWrongGroup, ""
        data = self.data[shard]
        if op.Kind == "Get":
            if op.Key in data:
                return OK, data[op.Key]
            return ErrNoKey, ""
        if rsm.fresh(self.lastSeq[shard], op.ClientId, op.SeqNum):
            if op.Kind == "Put":
                data[op.Key] = op.Value
            else:
                data[op.Key] = data.get(op.Key, "") + op.Value
        return OK, ""

    def _applyConfig(self, cfg):
        """Move to cfg if it is the next config; True if that dropped shard data."""
        if cfg.Num != self.config.Num + 1:
            return False  # a duplicate, or proposed twice
        if any(st != SERVING for st in self.status):
            raise AssertionError(f"shardkv {self.gid}-{self.me}: config {cfg.Num} while a hand-over runs")
        dropped = False
        for s in range(NShards):
            was, now = self.config.Shards[s], cfg.Shards[s]
            if now == self.gid and was != self.gid:
                # gid 0 held no data: the shard starts empty
                self.status[s] = SERVING if was == 0 else PULLING
            elif was == self.gid and now != self.gid:
                if now == 0:
                    # no group left to take it: nobody will ever pull it
                    self.data[s], self.lastSeq[s] = {}, {}
                    dropped = True
                else:
                    self.status[s] = BEPULLING
        self.lastConfig, self.config = self.config, cfg
        if Debug:
            DPrintf("CONF", self.me, "g%d config %d %s", self.gid, cfg.Num, self.status)
        return dropped

    def _applyInsert(self, cmd):
        if cmd.ConfigNum != self.config.Num:
            return
        for s, data in cmd.Data.items():
            if self.status[s] == PULLING:
                self.data[s] = dict(data)
                self.lastSeq[s] = dict(cmd.LastSeq.get(s, {}))
                self.status[s] = GCING

    def _applyDelete(self, cmd):
        """Finish a hand-over; True if that dropped shard data."""
        if cmd.ConfigNum != self.config.Num:
            return False
        dropped = False
        for s in cmd.Shards:
            if self.status[s] == GCING:
                self.status[s] = SERVING
            elif self.status[s] == BEPULLING:
                self.data[s], self.lastSeq[s] = {}, {}
                self.status[s] = SERVING
                dropped = True
        return dropped

    # ---- snapshots ------------------------------------------------------------------------

    def Snapshot(self):
        return [self.config, self.lastConfig, self.status, self.data, self.lastSeq]

    def Restore(self, state):
        if not (
            isinstance(state, list) and len(state) == 5
            and all(isinstance(c, shardctrler.Config) for c in state[:2])
            and all(isinstance(x, list) and len(x) == NShards for x in state[2:])
        ):
            raise ValueError("unexpected fields")
        self.config, self.lastConfig, self.status, self.data, self.lastSeq = state

    # ---- lifecycle ------------------------------------------------------------------------------

    def Kill(self):
        """Stop the server and its Raft; every thread they started ends."""
        self._killed.set()
        self.rsm.Kill()

    def killed(self):
        return self.rsm.killed()


def StartServer(servers, me, persister, maxraftstate, gid, ctrlers, make_end):
    """servers are the ends of this group's servers (me is this one's index);
    the server snapshots when Raft's persisted state reaches maxraftstate bytes
    (never if -1); gid is the group's id; ctrlers are ends to the shard
    controllers; make_end(servername) turns a name from Config.Groups into an
    end for talking to other groups.  Returns at once, with the threads running."""
    return ShardKV(servers, me, persister, maxraftstate, gid, ctrlers, make_end)
