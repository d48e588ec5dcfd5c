"""The key/value server: a replicated state machine on Raft (see rsm).

Every request, Gets included, goes through the Raft log; a server answers a
clerk only after the request's entry has been applied.  Each clerk numbers its
requests, and the table of the last number applied per clerk travels in the
snapshot, so a retried Put or Append is applied at most once, even across
snapshots and restarts.
"""

import dataclasses
import threading

import labgob
import rsm
from raft.util import DPrintf, check_str, refuses

from .common import OK, ErrBadArgs, ErrNoKey, check_get_args, check_put_append_args


@labgob.Register
@dataclasses.dataclass
class Op:
    """A log entry: one clerk request."""

    Kind: str = ""  # "Get", "Put" or "Append"
    Key: str = ""
    Value: str = ""
    ClientId: int = 0
    SeqNum: int = 0


class KVServer:
    def __init__(self, servers, me, persister, maxraftstate):
        self.mu = threading.Lock()  # the applier holds it in DoOp, Snapshot and Restore
        self.me = me
        self.data = {}  # key -> value
        self.lastSeq = {}  # client id -> highest SeqNum applied
        self.rsm = rsm.MakeRSM(servers, me, persister, maxraftstate, self, f"kv{me}", f"kvserver {me}")
        self.rf = self.rsm.Raft()

    # ---- RPC handlers ---------------------------------------------------------------
    # Each first refuses ill-typed args, which Go's labrpc could not even decode, before
    # they reach the log and kill every replica's applier (see raft.util).

    def Get(self, args, reply):
        if refuses(check_get_args, args, self.me):
            reply.Err = ErrBadArgs
            return
        reply.Err, value = self.rsm.Submit(Op("Get", args.Key, "", args.ClientId, args.SeqNum))
        if value is not None:
            reply.Value = value

    def PutAppend(self, args, reply):
        if refuses(check_put_append_args, args, self.me):
            reply.Err = ErrBadArgs
            return
        reply.Err, _ = self.rsm.Submit(Op(args.Op, args.Key, args.Value, args.ClientId, args.SeqNum))

    # ---- the state machine (the applier calls these holding mu) ---------------------------

    def DoOp(self, op):
        # An entry no clerk could send (one Start took past the handlers' checks)
        # stops the applier here, rather than leave a state that Go's types rule out.
        check_str(f"{op.Kind}: key", op.Key)
        check_str(f"{op.Kind}: value", op.Value)
        if op.Kind == "Get":
            if op.Key in self.data:
                return OK, self.data[op.Key]
            return ErrNoKey, ""
        if rsm.fresh(self.lastSeq, op.ClientId, op.SeqNum):
            if op.Kind == "Put":
                self.data[op.Key] = op.Value
            else:
                self.data[op.Key] = self.data.get(op.Key, "") + op.Value
            DPrintf("APLY", self.me, "%s %r by C%x #%d", op.Kind, op.Key, op.ClientId & 0xFFFF, op.SeqNum)
        return OK, ""

    def Snapshot(self):
        return [self.data, self.lastSeq]

    def Restore(self, state):
        if not (isinstance(state, list) and len(state) == 2 and all(isinstance(x, dict) for x in state)):
            raise ValueError("unexpected field types")
        self.data, self.lastSeq = state

    # ---- lifecycle ------------------------------------------------------------------------

    def Kill(self):
        """Stop the server and its Raft; every thread they started ends."""
        self.rsm.Kill()

    def killed(self):
        return self.rsm.killed()


def StartKVServer(servers, me, persister, maxraftstate):
    """servers holds the ends of all the servers that cooperate through Raft to
    form the fault-tolerant service; me is this server's index.  The server
    snapshots when Raft's persisted state reaches maxraftstate bytes (never if
    it is -1).  Returns at once, with the server's threads running."""
    return KVServer(servers, me, persister, maxraftstate)
