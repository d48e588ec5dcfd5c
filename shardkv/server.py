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
import io
import threading
import time

import labgob
import raft
import shardctrler
from raft.util import DPrintf, Debug, naming_entry, refuses

from .client import key2shard
from .common import (
    OK,
    DeleteShardsArgs,
    DeleteShardsReply,
    ErrBadArgs,
    ErrNoKey,
    ErrNotReady,
    ErrTimeout,
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
# How often a waiting handler checks that its Raft still leads in the same
# term, and how long it waits for its entry before telling the caller to retry.
LEADERSHIP_CHECK_INTERVAL = 0.050
APPLY_TIMEOUT = 1.0

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


class _Waiter:
    """A handler waiting for the entry it started at some log index."""

    __slots__ = ("cmd", "done", "err", "value")

    def __init__(self, cmd):
        self.cmd = cmd
        self.done = threading.Event()
        self.err = ErrWrongLeader
        self.value = ""


class ShardKV:
    def __init__(self, servers, me, persister, maxraftstate, gid, ctrlers, make_end):
        self.mu = threading.Lock()
        self.me = me
        self.make_end = make_end
        self.gid = gid
        self.ctrlers = ctrlers
        self.maxraftstate = maxraftstate  # snapshot if the Raft state grows this big (-1: never)
        self.persister = persister
        self.dead = False
        self._killed = threading.Event()

        self.config = shardctrler.Config()  # the configuration the group is in
        self.lastConfig = shardctrler.Config()  # the one before: who held our new shards
        self.status = [SERVING] * NShards
        self.data = [{} for _ in range(NShards)]  # shard -> {key: value}
        self.lastSeq = [{} for _ in range(NShards)]  # shard -> {client id: highest SeqNum applied}
        self.lastApplied = 0
        self.unsnapshotted = 0  # about how many bytes of log entries a snapshot now would free
        self.waiters = {}  # log index -> [_Waiter]
        self.ends = {}  # server name -> end to it, made once
        self.ctrlerLeader = 0  # the controller that answered last
        self.noopTerm = -1  # the last term in which this replica started its EmptyOp
        self._restore(persister.ReadSnapshot())

        self.applyCh = raft.Chan()
        self.rf = raft.Make(servers, me, persister, self.applyCh)

        name = f"skv{gid}-{me}"
        self._threads = [
            threading.Thread(target=self.applier, name=f"{name}-applier", daemon=True),
            threading.Thread(target=self._every, args=(POLL_INTERVAL, self._pollConfig), name=f"{name}-poller", daemon=True),
            threading.Thread(target=self._every, args=(MIGRATE_INTERVAL, self._pullShards), name=f"{name}-puller", daemon=True),
            threading.Thread(target=self._every, args=(MIGRATE_INTERVAL, self._deleteShards), name=f"{name}-gc", daemon=True),
        ]
        for th in self._threads:
            th.start()

    # ---- clerk RPC handlers -----------------------------------------------------------

    def Get(self, args, reply):
        if self._refused(check_get_args, args):
            reply.Err = ErrBadArgs
            return
        reply.Err, reply.Value = self._clerkOp(Op("Get", args.Key, "", args.ClientId, args.SeqNum))

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
        return self._submit(op)

    def _canServe(self, shard):
        return self.config.Shards[shard] == self.gid and self.status[shard] in (SERVING, GCING)

    def _submit(self, cmd):
        """Start cmd in Raft and wait until it is applied; returns (Err, value)."""
        if self.dead:
            return ErrWrongLeader, ""
        w = _Waiter(cmd)
        with self.mu:
            # Start under mu: the applier takes mu before it looks for the waiters of
            # an index, so it cannot apply our entry before we are registered.
            index, term, isLeader = self.rf.Start(cmd)
            if not isLeader:
                return ErrWrongLeader, ""
            self.waiters.setdefault(index, []).append(w)
        deadline = time.monotonic() + APPLY_TIMEOUT
        gaveUp = ErrWrongLeader
        while not w.done.wait(LEADERSHIP_CHECK_INTERVAL):
            # Lost leadership, or a newer term: our entry may never commit.
            if self.dead or self.rf.GetState() != (term, True):
                break
            if time.monotonic() >= deadline:
                gaveUp = ErrTimeout
                break
        with self.mu:
            # The applier fills w under mu, so it either has (done is set) or never will.
            if w.done.is_set():
                return w.err, w.value
            pending = self.waiters.get(index)
            if pending is not None and w in pending:
                pending.remove(w)
                if not pending:
                    del self.waiters[index]
        return gaveUp, ""

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
        reply.Err, _ = self._submit(DeleteShardsOp(args.ConfigNum, list(args.Shards)))

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
            if self.dead:
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
            if self.dead:
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
            if self.dead:
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

    def applier(self):
        for msg in self.applyCh:
            if msg.SnapshotValid:
                with self.mu:
                    if msg.SnapshotIndex > self.lastApplied:
                        self._restore(msg.Snapshot)
                        self.unsnapshotted = 0  # Raft's log now starts after the snapshot
                        self._failWaitersThrough(msg.SnapshotIndex)
                continue
            if not msg.CommandValid:
                continue
            with self.mu:
                if msg.CommandIndex <= self.lastApplied:
                    continue  # already in the state (from a snapshot)
                with naming_entry(f"shardkv {self.gid}-{self.me}", msg.CommandIndex, msg.Command):
                    self._applyCommand(msg.CommandIndex, msg.Command)

    def _applyCommand(self, index, cmd):
        """Apply the entry at log index, answer its waiters, snapshot if due (caller holds mu)."""
        err, value, size, dropped = self._apply(cmd)
        self.lastApplied = index
        for w in self.waiters.pop(index, ()):
            if w.cmd == cmd:
                w.err, w.value = err, value
            # else: another leader's entry took this index; the caller retries
            w.done.set()
        self.unsnapshotted += size
        # Snapshot once Raft's state reaches maxraftstate, but only if that frees
        # a good part of it: an applier far behind Raft holds a state that is
        # mostly entries it has not applied, and a snapshot per applied entry
        # would only slow it down further.  Snapshot at once after dropping shards
        # given away: else the persisted snapshot keeps their data until the next
        # one, however long the group then stays idle.
        if self.maxraftstate >= 0 and (
            dropped
            or (
                self.maxraftstate <= self.persister.RaftStateSize()
                and self.unsnapshotted * 2 >= self.maxraftstate
            )
        ):
            self.unsnapshotted = 0
            self.rf.Snapshot(index, self._snapshot())

    def _apply(self, cmd):
        """Apply one entry (caller holds mu); returns (Err, value, about its encoded
        size, whether it dropped the data of shards)."""
        t = type(cmd)
        if t is Op:
            return self._applyOp(cmd) + (len(cmd.Key) + len(cmd.Value) + 32, False)
        if t is ConfigOp:
            dropped = self._applyConfig(cmd.Config)
            return OK, "", 64 + 16 * NShards + 32 * len(cmd.Config.Groups), dropped
        if t is InsertShardsOp:
            self._applyInsert(cmd)
            return OK, "", 32 + sum(len(k) + len(v) + 8 for d in cmd.Data.values() for k, v in d.items()), False
        if t is DeleteShardsOp:
            return OK, "", 32, self._applyDelete(cmd)
        if t is EmptyOp:
            return OK, "", 8, False
        raise TypeError(f"shardkv {self.gid}-{self.me}: unknown log entry {cmd!r}")

    def _applyOp(self, op):
        shard = key2shard(op.Key)
        if not self._canServe(shard):
            return ErrWrongGroup, ""
        data = self.data[shard]
        if op.Kind == "Get":
            if op.Key in data:
                return OK, data[op.Key]
            return ErrNoKey, ""
        seqs = self.lastSeq[shard]
        if op.SeqNum > seqs.get(op.ClientId, 0):
            seqs[op.ClientId] = op.SeqNum
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

    def _failWaitersThrough(self, index):
        """Entries up to index arrived inside a snapshot: their handlers cannot
        know whether their own request is among them, so the callers retry."""
        for i in [i for i in self.waiters if i <= index]:
            for w in self.waiters.pop(i):
                w.done.set()

    # ---- snapshots --------------------------------------------------------------------------

    def _snapshot(self):
        w = io.BytesIO()
        e = labgob.NewEncoder(w)
        e.Encode(self.lastApplied)
        e.Encode(self.config)
        e.Encode(self.lastConfig)
        e.Encode(self.status)
        e.Encode(self.data)
        e.Encode(self.lastSeq)
        return w.getvalue()

    def _restore(self, snapshot):
        if not snapshot:
            return
        try:
            d = labgob.NewDecoder(io.BytesIO(snapshot))
            fields = [d.Decode() for _ in range(6)]
        except labgob.DecodeError as err:
            raise ValueError(f"shardkv {self.gid}-{self.me}: corrupted snapshot: {err}") from None
        lastApplied, config, lastConfig, status, data, lastSeq = fields
        if not (
            isinstance(lastApplied, int)
            and isinstance(config, shardctrler.Config)
            and isinstance(lastConfig, shardctrler.Config)
            and all(isinstance(x, list) and len(x) == NShards for x in (status, data, lastSeq))
        ):
            raise ValueError(f"shardkv {self.gid}-{self.me}: corrupted snapshot: unexpected fields")
        self.lastApplied, self.config, self.lastConfig = lastApplied, config, lastConfig
        self.status, self.data, self.lastSeq = status, data, lastSeq

    # ---- lifecycle ------------------------------------------------------------------------------

    def Kill(self):
        """Stop the server and its Raft; every thread they started ends."""
        self.dead = True
        self._killed.set()
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


def StartServer(servers, me, persister, maxraftstate, gid, ctrlers, make_end):
    """servers are the ends of this group's servers (me is this one's index);
    the server snapshots when Raft's persisted state reaches maxraftstate bytes
    (never if -1); gid is the group's id; ctrlers are ends to the shard
    controllers; make_end(servername) turns a name from Config.Groups into an
    end for talking to other groups.  Returns at once, with the threads running."""
    return ShardKV(servers, me, persister, maxraftstate, gid, ctrlers, make_end)
