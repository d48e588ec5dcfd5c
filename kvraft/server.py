"""The key/value server: a replicated state machine on Raft.

Every request, Gets included, goes through the Raft log; a server answers a
clerk only after the request's entry has been applied.  Each clerk numbers its
requests, and the table of the last number applied per clerk travels in the
snapshot, so a retried Put or Append is applied at most once, even across
snapshots and restarts.
"""

import dataclasses
import io
import threading
import time

import labgob
import raft
from raft.util import DPrintf, naming_entry, refuses

from .common import OK, ErrBadArgs, ErrNoKey, ErrTimeout, ErrWrongLeader, check_get_args, check_put_append_args

# How often a waiting handler checks that its Raft still leads in the same term,
# and how long it waits for its entry before telling the clerk to try elsewhere.
LEADERSHIP_CHECK_INTERVAL = 0.050
APPLY_TIMEOUT = 1.0


@labgob.Register
@dataclasses.dataclass
class Op:
    """A log entry: one clerk request."""

    Kind: str = ""  # "Get", "Put" or "Append"
    Key: str = ""
    Value: str = ""
    ClientId: int = 0
    SeqNum: int = 0


class _Waiter:
    """A handler waiting for the entry it started at some log index."""

    __slots__ = ("op", "done", "err", "value")

    def __init__(self, op):
        self.op = op
        self.done = threading.Event()
        self.err = ErrWrongLeader
        self.value = ""


class KVServer:
    def __init__(self, servers, me, persister, maxraftstate):
        self.mu = threading.Lock()
        self.me = me
        self.dead = False  # set by Kill()
        self.maxraftstate = maxraftstate  # snapshot if the Raft state grows this big (-1: never)
        self.persister = persister
        self.applyCh = raft.Chan()

        self.data = {}  # key -> value
        self.lastSeq = {}  # client id -> highest SeqNum applied
        self.lastApplied = 0
        self.unsnapshotted = 0  # about how many bytes of log entries a snapshot now would free
        self.waiters = {}  # log index -> [_Waiter]
        self._restore(persister.ReadSnapshot())

        self.rf = raft.Make(servers, me, persister, self.applyCh)
        self._applier = threading.Thread(target=self.applier, name=f"kv{me}-applier", daemon=True)
        self._applier.start()

    # ---- RPC handlers ---------------------------------------------------------------
    # Each first refuses ill-typed args, which Go's labrpc could not even decode, before
    # they reach the log and kill every replica's applier (see raft.util).

    def Get(self, args, reply):
        if refuses(check_get_args, args, self.me):
            reply.Err = ErrBadArgs
            return
        reply.Err, reply.Value = self._submit(Op("Get", args.Key, "", args.ClientId, args.SeqNum))

    def PutAppend(self, args, reply):
        if refuses(check_put_append_args, args, self.me):
            reply.Err = ErrBadArgs
            return
        reply.Err, _ = self._submit(Op(args.Op, args.Key, args.Value, args.ClientId, args.SeqNum))

    def _submit(self, op):
        """Start op in Raft and wait until it is applied; returns (Err, value)."""
        if self.killed():
            return ErrWrongLeader, ""
        w = _Waiter(op)
        with self.mu:
            # Start under mu: the applier takes mu before it looks for the waiters of
            # an index, so it cannot apply our entry before we are registered.
            index, term, isLeader = self.rf.Start(op)
            if not isLeader:
                return ErrWrongLeader, ""
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
                return w.err, w.value
            pending = self.waiters.get(index)
            if pending is not None and w in pending:
                pending.remove(w)
                if not pending:
                    del self.waiters[index]
        return gaveUp, ""

    # ---- applying the log ---------------------------------------------------------------

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
                with naming_entry(f"kvserver {self.me}", msg.CommandIndex, msg.Command):
                    self._applyCommand(msg.CommandIndex, msg.Command)

    def _applyCommand(self, index, op):
        """Apply the command at log index, answer its waiters, snapshot if due (caller holds mu)."""
        err, value = self._apply(op)
        self.lastApplied = index
        for w in self.waiters.pop(index, ()):
            if w.op.ClientId == op.ClientId and w.op.SeqNum == op.SeqNum:
                w.err, w.value = err, value
            # else: another leader's entry took this index; the clerk retries
            w.done.set()
        # The entry's encoded size, near enough: its strings plus the fixed fields.
        self.unsnapshotted += len(op.Key) + len(op.Value) + 32
        # Snapshot once Raft's state reaches maxraftstate, but only if that frees
        # a good part of it: an applier far behind Raft (after a restart, or under
        # load) holds a state that is mostly entries it has not applied, and a
        # snapshot per applied entry would only slow it down further.
        if (
            0 <= self.maxraftstate <= self.persister.RaftStateSize()
            and self.unsnapshotted * 2 >= self.maxraftstate
        ):
            self.unsnapshotted = 0
            self.rf.Snapshot(index, self._snapshot())
            DPrintf("SNAP", self.me, "snapshot through %d", index)

    def _apply(self, op):
        """Apply op to the state (caller holds mu); returns (Err, value)."""
        if op.Kind == "Get":
            if op.Key in self.data:
                return OK, self.data[op.Key]
            return ErrNoKey, ""
        if op.SeqNum > self.lastSeq.get(op.ClientId, 0):
            self.lastSeq[op.ClientId] = op.SeqNum
            if op.Kind == "Put":
                self.data[op.Key] = op.Value
            else:
                self.data[op.Key] = self.data.get(op.Key, "") + op.Value
            DPrintf("APLY", self.me, "%s %r by C%x #%d", op.Kind, op.Key, op.ClientId & 0xFFFF, op.SeqNum)
        return OK, ""

    def _failWaitersThrough(self, index):
        """Entries up to index arrived inside a snapshot: their handlers cannot
        know whether their own request is among them, so the clerks retry."""
        for i in [i for i in self.waiters if i <= index]:
            for w in self.waiters.pop(i):
                w.done.set()

    # ---- snapshots ----------------------------------------------------------------------

    def _snapshot(self):
        w = io.BytesIO()
        e = labgob.NewEncoder(w)
        e.Encode(self.lastApplied)
        e.Encode(self.data)
        e.Encode(self.lastSeq)
        return w.getvalue()

    def _restore(self, snapshot):
        if not snapshot:
            return
        try:
            d = labgob.NewDecoder(io.BytesIO(snapshot))
            lastApplied, data, lastSeq = d.Decode(), d.Decode(), d.Decode()
        except labgob.DecodeError as err:
            raise ValueError(f"kvserver {self.me}: corrupted snapshot: {err}") from None
        if not (isinstance(lastApplied, int) and isinstance(data, dict) and isinstance(lastSeq, dict)):
            raise ValueError(f"kvserver {self.me}: corrupted snapshot: unexpected field types")
        self.lastApplied, self.data, self.lastSeq = lastApplied, data, lastSeq

    # ---- lifecycle ------------------------------------------------------------------------

    def Kill(self):
        """Stop the server and its Raft; every thread they started ends."""
        self.dead = True
        self.rf.Kill()
        # Closing applyCh ends our applier (Raft's own ended with rf.Kill()).
        self.applyCh.close()
        with self.mu:
            for ws in self.waiters.values():
                for w in ws:
                    w.done.set()
            self.waiters.clear()

    def killed(self):
        return self.dead


def StartKVServer(servers, me, persister, maxraftstate):
    """servers holds the ends of all the servers that cooperate through Raft to
    form the fault-tolerant service; me is this server's index.  The server
    snapshots when Raft's persisted state reaches maxraftstate bytes (never if
    it is -1).  Returns at once, with the server's threads running."""
    return KVServer(servers, me, persister, maxraftstate)
