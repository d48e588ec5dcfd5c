"""In-memory stand-in for the disk that Raft and the key/value server save to.

Twin of raft/persister.go.  The tester hands a server the same Persister across a
restart (through Copy), so what was saved survives a crash.  Python bytes are
immutable, so sharing them between a Persister and its copy is as safe as Go's
clones, and bytearray/memoryview arguments are copied into bytes on Save.
"""

import threading

__all__ = ["MakePersister", "Persister"]


def _clone(data):
    if data is None:
        return b""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError(f"Persister.Save: expected bytes, got {type(data).__name__}")
    return bytes(data)


class Persister:
    def __init__(self):
        self.mu = threading.Lock()
        self.raftstate = b""
        self.snapshot = b""

    def Copy(self):
        with self.mu:
            np = MakePersister()
            np.raftstate = self.raftstate
            np.snapshot = self.snapshot
            return np

    def ReadRaftState(self):
        with self.mu:
            return self.raftstate

    def RaftStateSize(self):
        with self.mu:
            return len(self.raftstate)

    def Save(self, raftstate, snapshot):
        """Atomically replace both the Raft state and the snapshot."""
        raftstate, snapshot = _clone(raftstate), _clone(snapshot)
        with self.mu:
            self.raftstate = raftstate
            self.snapshot = snapshot

    def ReadSnapshot(self):
        with self.mu:
            return self.snapshot

    def SnapshotSize(self):
        with self.mu:
            return len(self.snapshot)


def MakePersister():
    return Persister()
