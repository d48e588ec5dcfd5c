"""A replicated state machine on Raft: what kvraft, shardctrler and shardkv share
(the 2025 course's rsm package; the 2023 labs the skeleton follows have none).

A service is a state machine `sm` with
    sm.mu            its lock; the applier holds it while it calls the three below
    sm.DoOp(cmd)     apply one committed command; returns (Err, value)
    sm.Snapshot()    its state as one labgob-encodable value (only if it snapshots)
    sm.Restore(st)   take back a state Snapshot() gave; ValueError if st is malformed
    sm.snapshot_due  (optional) DoOp sets it for a snapshot right after its entry
and MakeRSM(servers, me, persister, maxraftstate, sm, name, who) gives it a Raft
peer (rsm.rf) fed by an applier thread (`<name>-applier`), and rsm.Submit(cmd):
start cmd in Raft and wait until it is applied.  Every entry goes through DoOp in
log order on every replica; the applier snapshots once Raft's state reaches
maxraftstate (or when DoOp sets sm.snapshot_due), and a restarted server, or one
that gets a leader's snapshot, restores from it.  An exception raised by DoOp ends
the applier with a note naming the entry (who, index, command), as a Go panic would.
Duplicate detection is the service's, with fresh() below: its table of the last
request applied per clerk is part of its state (shardkv's moves with each shard).
"""

import dataclasses
import threading
import time

import labgob
import raft
from raft.util import DPrintf, naming_entry

__all__ = ["MakeRSM", "RSM", "fresh", "OK", "ErrWrongLeader", "ErrTimeout"]

# The Err values Submit returns itself: the same strings in each service's common.py.
OK = "OK"
ErrWrongLeader = "ErrWrongLeader"
ErrTimeout = "ErrTimeout"  # led, but saw no commit in time (say, in a minority): try another

# How often a waiting handler checks that its Raft still leads in the same term,
# and how long it waits for its entry before telling the caller to try elsewhere.
LEADERSHIP_CHECK_INTERVAL = 0.050
APPLY_TIMEOUT = 1.0


def fresh(table, client_id, seq):
    """Duplicate detection.  table maps a clerk's id to the number of its last
    request applied; a clerk numbers its requests and sends one at a time, so a
    number not above that one is a retry.  True, and seq recorded, if it is new."""
    if seq <= table.get(client_id, 0):
        return False
    table[client_id] = seq
    return True


class _Waiter:
    """A handler waiting for the command it started at some log index."""

    __slots__ = ("cmd", "done", "result")

    def __init__(self, cmd):
        self.cmd = cmd
        self.done = threading.Event()
        self.result = (ErrWrongLeader, None)


class RSM:
    def __init__(self, servers, me, persister, maxraftstate, sm, name, who):
        self.mu = sm.mu
        self.me = me
        self.sm = sm
        self.who = who  # names the server in errors: "kvserver 1"
        self.maxraftstate = maxraftstate  # snapshot if the Raft state grows this big (-1: never)
        self.persister = persister
        self.dead = False  # set by Kill()
        self.lastApplied = 0
        self._unsnapshotted = 0  # about how many bytes of log entries a snapshot now would free
        self._waiters = {}  # log index -> [_Waiter]
        self._restore(persister.ReadSnapshot())

        self.applyCh = raft.Chan()
        self.rf = raft.Make(servers, me, persister, self.applyCh)
        threading.Thread(target=self._applier, name=f"{name}-applier", daemon=True).start()

    def Raft(self):
        return self.rf

    def Submit(self, cmd):
        """Start cmd in Raft and wait until it is applied.  Returns DoOp's (Err,
        value) if cmd took its index; else (ErrWrongLeader or ErrTimeout, None)."""
        if self.dead:
            return ErrWrongLeader, None
        w = _Waiter(cmd)
        with self.mu:
            # Start under mu: the applier takes mu before it looks for the waiters of
            # an index, so it cannot apply our entry before we are registered.
            index, term, isLeader = self.rf.Start(cmd)
            if not isLeader:
                return ErrWrongLeader, None
            self._waiters.setdefault(index, []).append(w)
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
            # The applier answers w under mu, so it either has (done is set) or never will.
            if w.done.is_set():
                return w.result
            pending = self._waiters.get(index)
            if pending is not None and w in pending:
                pending.remove(w)
                if not pending:
                    del self._waiters[index]
        return gaveUp, None

    # ---- applying the log ----------------------------------------------------------

    def _applier(self):
        for msg in self.applyCh:
            with self.mu:
                if msg.SnapshotValid and msg.SnapshotIndex > self.lastApplied:
                    self._restore(msg.Snapshot)
                    self._unsnapshotted = 0  # Raft's log now starts after the snapshot
                    # Their handlers cannot know whether their own command is among
                    # the entries the snapshot holds, so the callers retry.
                    self._release(lambda index: index <= msg.SnapshotIndex)
                elif msg.CommandValid and msg.CommandIndex > self.lastApplied:
                    with naming_entry(self.who, msg.CommandIndex, msg.Command):
                        self._apply(msg.CommandIndex, msg.Command)

    def _apply(self, index, cmd):
        """Apply the command at log index, answer its waiters, snapshot if due (caller holds mu)."""
        result = self.sm.DoOp(cmd)
        self.lastApplied = index
        for w in self._waiters.pop(index, ()):
            if w.cmd == cmd:
                w.result = result
            # else: another leader's entry took this index; the caller retries
            w.done.set()
        self._unsnapshotted += _size(cmd)
        # Snapshot once Raft's state reaches maxraftstate, but only if that frees a
        # good part of it: an applier far behind Raft (after a restart, or under
        # load) holds a state that is mostly entries it has not applied, and a
        # snapshot per applied entry would only slow it down further.
        due = getattr(self.sm, "snapshot_due", False)
        if self.maxraftstate >= 0 and (
            due
            or (self.maxraftstate <= self.persister.RaftStateSize() and self._unsnapshotted * 2 >= self.maxraftstate)
        ):
            if due:
                self.sm.snapshot_due = False
            self._unsnapshotted = 0
            self.rf.Snapshot(index, labgob.encode(self.lastApplied) + labgob.encode(self.sm.Snapshot()))
            DPrintf("SNAP", self.me, "%s: snapshot through %d", self.who, index)

    def _restore(self, snapshot):
        if not snapshot:
            return
        try:
            d = labgob.NewDecoder(snapshot)
            lastApplied, state = d.Decode(), d.Decode()
            if not isinstance(lastApplied, int):
                raise ValueError(f"applied index {lastApplied!r}")
            self.sm.Restore(state)
        except ValueError as err:  # labgob.DecodeError is one
            raise ValueError(f"{self.who}: corrupted snapshot: {err}") from None
        self.lastApplied = lastApplied

    def _release(self, which):
        """Wake the handlers waiting on the indexes which(index) picks, unanswered."""
        for index in [i for i in self._waiters if which(i)]:
            for w in self._waiters.pop(index):
                w.done.set()

    # ---- lifecycle -------------------------------------------------------------------

    def Kill(self):
        """Stop Raft and the applier; waiting handlers return ErrWrongLeader."""
        self.dead = True
        self.rf.Kill()
        # Closing applyCh ends our applier and releases Raft's, which may be blocked sending.
        self.applyCh.close()
        with self.mu:
            self._release(lambda index: True)

    def killed(self):
        return self.dead


def _size(value):
    """About how many bytes value takes in the log: enough to pace snapshots."""
    t = type(value)
    if t is str or t is bytes:
        return len(value) + 2
    if t is list:
        return 2 + sum(map(_size, value))
    if t is dict:
        return 2 + sum(_size(k) + _size(v) for k, v in value.items())
    if dataclasses.is_dataclass(value):
        return 16 + sum(map(_size, vars(value).values()))
    return 8


def MakeRSM(servers, me, persister, maxraftstate, sm, name, who):
    """Start Raft and the applier for the state machine sm (see the module's doc);
    name prefixes the threads' names, who names the server in errors."""
    return RSM(servers, me, persister, maxraftstate, sm, name, who)
