"""Test hooks of the network, for the extra Raft tests (tests/raft/test_extra.py).

    net.Observe(fn)          fn(event) for every request sent and every reply received
    net.DuplicateLate(True)  deliver earlier requests again, late, and drop their replies

An observer sees the traffic black-box: who called whom, which method, the
args and reply objects, never a field of them.  It runs on the calling
thread, outside the network's lock, so it must not block: a test that wants
to act on an event (restart the peer that answered, cut a link) hands the
work to a thread of its own, or flips network switches only.

DuplicateLate is a nemesis real networks have: a request delivered, then a
copy of it delivered again much later.  While it is on, the network keeps the
first requests it delivers on each end (up to KEEP), and after every later
reply on that end delivers one of them, chosen at random, to the same server
again; the server's reply to the copy is dropped.  Figure 2's AppendEntries
must shrug such a copy off: it truncates the log only on a conflict.
"""

import dataclasses
import random
import threading

import labgob

KEEP = 32  # requests kept per end for DuplicateLate


@dataclasses.dataclass
class Event:
    """One observed message.  kind: "request" (a call is being sent; it may
    still be lost), "reply" (a call returned its reply) or "duplicate" (a kept
    request was delivered again and its reply dropped).  number counts the
    replies of this network; a duplicate carries the number of the reply its
    original got, a request 0.  size is the args' length in bytes on the wire."""

    kind: str
    number: int
    endname: object
    servername: object
    svcMeth: str
    args: object
    size: int
    reply: object = None


class Hooks:
    """The observer and the DuplicateLate nemesis of one network."""

    def __init__(self):
        self.mu = threading.Lock()
        self.observer = None
        self.duplicate = False
        self.replies = 0
        self.kept = {}  # endname -> [(number, svcMeth, args bytes, reply type)]

    def active(self):
        return self.observer is not None or self.duplicate

    def set_observer(self, fn):
        if fn is not None and not callable(fn):
            raise TypeError(f"Observe: expected a callable or None, not {fn!r}")
        with self.mu:
            self.observer = fn

    def set_duplicate(self, yes):
        with self.mu:
            self.duplicate = bool(yes)
            self.kept.clear()

    def on_request(self, endname, servername, svcMeth, args, args_bytes):
        observer = self.observer
        if observer is not None:
            observer(Event("request", 0, endname, servername, svcMeth, args, len(args_bytes)))

    def on_reply(self, net, endname, servername, server, svcMeth, args, args_bytes, reply):
        """Called by Call after reply was filled in, before it returns True."""
        with self.mu:
            self.replies += 1
            number = self.replies
            observer = self.observer
            late = None
            if self.duplicate:
                kept = self.kept.setdefault(endname, [])
                if kept:
                    late = random.choice(kept)
                if len(kept) < KEEP:
                    kept.append((number, svcMeth, args_bytes, type(reply)))
        if observer is not None:
            observer(Event("reply", number, endname, servername, svcMeth, args, len(args_bytes), reply))
        if late is not None and self._deliver(net, endname, servername, server, late) and observer is not None:
            number, svcMeth, args_bytes, _ = late
            observer(Event("duplicate", number, endname, servername, svcMeth, labgob.decode(args_bytes), len(args_bytes)))

    @staticmethod
    def _deliver(net, endname, servername, server, late):
        """Run the server's handler on a kept request; its reply is dropped.
        False if the server died or the end was disabled meanwhile."""
        from .labrpc import _PendingCall  # labrpc imports this module

        _, svcMeth, args_bytes, reply_type = late
        if net._isServerDead(endname, servername, server):
            return False
        call = _PendingCall(server, svcMeth, args_bytes, reply_type)
        if not net._pool.submit(call.run):
            return False
        while not call.finished.acquire(timeout=0.1):
            if net.done.is_set() or net._isServerDead(endname, servername, server):
                return False
        return call.reply is not None
