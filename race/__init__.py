"""A race detector for the lab tests: `pytest --race`, `make test-2B RACE=1`,
`mtests.py --race`.

Go students run `go test -race`, which fails a test as soon as two goroutines
touch a variable without synchronisation.  CPython switches threads only every
few milliseconds, so the same bug in Python almost never shows; this detector
finds it from the locks instead, with Eraser's lockset rule: every field of
every object of the lab packages (the Raft peer, the kvserver, their lists and
dicts) must be protected by some lock held at each access once the field is
shared and written.  A test fails when a field is written by one thread and
touched by another with no lock in common, naming the field, both threads,
their stacks and the locks each held.

Not reported, as in Go: accesses ordered by Thread.start/join, Event.set/wait,
queue.Queue put/get or a raft.Chan send/recv; initialisation before a field is
shared; fields only ever read once shared; and atomic fields.  Go's atomic
`dead` flag (atomic.StoreInt32/LoadInt32) is atomic in every class; a class
declares more with a class attribute, e.g. `__race_atomic__ = ("dead", "x")`.

Modules: detector (locks, hand-offs, shadows, reports), instrument (field
access hooks on classes), sites (which attribute loads feed a container
write), pytest_plugin (the --race option).
"""

from .detector import atomic_fields, install, installed, reset, take_reports, track_channel, uninstall
from .instrument import instrument_class, instrument_module, uninstrument_class

__all__ = [
    "atomic_fields",
    "install",
    "installed",
    "instrument_class",
    "instrument_module",
    "reset",
    "take_reports",
    "track_channel",
    "uninstall",
    "uninstrument_class",
]
