"""Helpers for Raft and the services built on it: the unbuffered channel that
stands in for Go's `chan ApplyMsg`, and debug logging (twin of util.go's DPrintf).

Debug logging is off unless the environment sets VERBOSE=1 (or more); while it
is off, DPrintf returns at once without formatting anything, so call sites need
no guard.  Each line reads `<ms since start> <TOPIC> S<id> <message>`, the
format dslogs.py understands.

print_line is for the testers' own lines (titles, "... Passed", notes).  A bare
print() writes its text and its newline in two writes, so a debug line from
another thread could land between them (`Test: ... ...000392 CMIT S0 ...`);
print_line writes the whole line at once, under the lock DPrintf holds.

The services built on Raft (kvraft, shardctrler, shardkv) also share here the
checks of their RPC arguments' types and the note that names a log entry an
applier failed on.
"""

import os
import reprlib
import sys
import threading
import time

import timeline

__all__ = [
    "Chan",
    "DPrintf",
    "Debug",
    "print_line",
    "describe",
    "check_str",
    "check_int",
    "check_type",
    "check_ids",
    "check_get",
    "check_put_append",
    "refuses",
    "entry_repr",
    "naming_entry",
]


def _verbosity():
    v = os.environ.get("VERBOSE", "")
    try:
        return int(v) if v else 0
    except ValueError:
        return 1


Debug = _verbosity() > 0
_debug_start = time.monotonic()
_debug_lock = threading.Lock()


def DPrintf(topic, server, fmt, *args):
    """Print one debug line for `server` (an int id) under `topic`, if Debug is on."""
    if not Debug:
        return
    ms = int((time.monotonic() - _debug_start) * 1000)
    msg = fmt % args if args else fmt
    line = f"{ms:06d} {topic} S{server} {msg}\n"
    timeline.dprintf(server, topic, msg)  # the line on its server's lane of a timeline page
    with _debug_lock:
        sys.stdout.write(line)
        sys.stdout.flush()


def print_line(text, file=None):
    """Write text and a newline as one write, never interleaved with a DPrintf line."""
    out = sys.stdout if file is None else file
    with _debug_lock:
        out.write(f"{text}\n")
        out.flush()


# ---- the services' checks of what may reach the log ---------------------------------
#
# Go's compiler types an RPC's fields, and labrpc decodes into those types; ours
# decodes whatever was sent.  An entry that cannot be applied kills every replica's
# applier, for good, since a restarted server replays it.  So a service's clerk checks
# its arguments before sending, and its server checks them again before Start, for a
# hand-made request.  A check raises TypeError for a wrong type, ValueError for a
# value no state can hold; each lab's common.py builds its per-RPC checks from these.


def describe(value):
    """A value's type and a short repr, for an error message."""
    return f"{type(value).__name__} ({reprlib.repr(value)})"


def check_str(what, value):
    if not isinstance(value, str):
        raise TypeError(f"{what} must be str, not {describe(value)}")


def check_int(what, value):
    # bool is an int subclass in Python, not in Go
    if type(value) is not int:
        raise TypeError(f"{what} must be int, not {describe(value)}")


def check_type(method, args, cls):
    # A hand-made client may send another RPC's arguments, or no dataclass at all.
    if not isinstance(args, cls):
        raise TypeError(f"{method}: args must be {cls.__name__}, not {describe(args)}")


def check_ids(method, args):
    """The clerk's id and request number, by which a server applies a request once."""
    check_int(f"{method}: ClientId", args.ClientId)
    check_int(f"{method}: SeqNum", args.SeqNum)


# kvraft and shardkv have the same Get and PutAppend (as in Go, each lab its own copy
# of the types), so one check serves both, given the lab's class.


def check_get(args, cls):
    check_type("Get", args, cls)
    check_str("Get: key", args.Key)
    check_ids("Get", args)


def check_put_append(args, cls):
    check_type("PutAppend", args, cls)
    if not isinstance(args.Op, str) or args.Op not in ("Put", "Append"):
        raise ValueError(f'PutAppend: op must be "Put" or "Append", not {describe(args.Op)}')
    check_str(f"{args.Op}: key", args.Key)
    check_str(f"{args.Op}: value", args.Value)
    check_ids(args.Op, args)


def refuses(check, args, server, prefix=""):
    """True if check(args) finds a wrong type or value: the handler then replies its
    service's ErrBadArgs rather than Start args.  Logs why, for `server` (an int id),
    after prefix (say the group)."""
    try:
        check(args)
    except (TypeError, ValueError) as err:
        DPrintf("WARN", server, "%srefused: %s", prefix, err)
        return True
    return False


def entry_repr(command, limit=300):
    """A log entry's repr, cut short: an entry may hold megabytes."""
    r = repr(command)
    return r if len(r) <= limit else f"{r[:limit]}... ({len(r)} characters)"


class naming_entry:
    """`with naming_entry(who, index, command):` around applying the log entry at
    index adds to any exception raised inside a note naming that entry.  The
    exception still ends the applier and fails the test, as a Go panic would; the
    note tells which entry every replica will fail on."""

    __slots__ = ("who", "index", "command")

    def __init__(self, who, index, command):
        self.who, self.index, self.command = who, index, command

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if isinstance(exc, Exception):
            note = f"({self.who} applying log entry {self.index}: {entry_repr(self.command)})"
            # add_note is 3.11's (we run on 3.10 too); from 3.11 on, tracebacks print this list
            exc.__notes__ = [*getattr(exc, "__notes__", ()), note]
        return False


_EMPTY = object()


class Chan:
    """An unbuffered channel: send() returns only once a receiver has taken the
    value, as in Go, so a Raft that holds its lock while sending on applyCh
    deadlocks here exactly as it would in Go.

    Unlike a Go channel, closing it also releases a blocked sender (send then
    returns False): the tester closes a killed peer's channel so that every
    thread of that peer can end.  A sender that must also give up when its
    owner stops (Go's select on the channel and a done channel) passes
    send(value, stop=predicate); the owner makes the predicate true, then calls
    wake_senders().
    """

    def __init__(self):
        self._mu = threading.Lock()
        self._can_recv = threading.Condition(self._mu)
        self._can_send = threading.Condition(self._mu)
        self._item = _EMPTY
        self._sent = 0  # sequence number of the last value offered
        self._taken = 0  # sequence number of the last value received
        self._closed = False

    def send(self, value, stop=None):
        """Block until a receiver takes `value`.  False if the channel is (or gets)
        closed first, or if stop() is (or, after a wake_senders(), becomes) true."""

        def give_up():
            return self._closed or (stop is not None and stop())

        with self._mu:
            while self._item is not _EMPTY and not give_up():
                self._can_send.wait()  # another sender's value is waiting
            if give_up():
                return False
            self._item = value
            self._sent += 1
            mine = self._sent
            self._can_recv.notify()
            while self._taken < mine and not give_up():
                self._can_send.wait()
            if self._taken >= mine:
                return True
            self._item = _EMPTY  # nobody took it: withdraw the offer, and let another sender in
            self._can_send.notify_all()
            return False

    def recv(self, timeout=None):
        """Return (value, True), or (None, False) once the channel is closed
        (or, with a timeout, when nothing arrived in time)."""
        with self._mu:
            if timeout is not None:
                deadline = time.monotonic() + timeout
            while self._item is _EMPTY:
                if self._closed:
                    return None, False
                if timeout is None:
                    self._can_recv.wait()
                else:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        return None, False
                    self._can_recv.wait(left)
            value = self._item
            self._item = _EMPTY
            self._taken = self._sent
            self._can_send.notify_all()
            return value, True

    def wake_senders(self):
        """Make blocked senders check their stop predicate again."""
        with self._mu:
            self._can_send.notify_all()

    def close(self):
        with self._mu:
            self._closed = True
            self._can_recv.notify_all()
            self._can_send.notify_all()

    def closed(self):
        with self._mu:
            return self._closed

    def __iter__(self):
        while True:
            value, ok = self.recv()
            if not ok:
                return
            yield value
