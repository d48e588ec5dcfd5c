"""Bugs planted into the solution, for the tests in this directory.

Loaded into a pytest subprocess with `-p tests.fidelity.plants`; the
environment variable PYLABS_PLANT names the bug.  Each plant patches public
names only (Raft's handlers and threads, the harness's Make, a clerk's
Call), so it survives refactoring of the solution's private helpers.
"""

import functools
import os
import threading

PLANT_VAR = "PYLABS_PLANT"


def _raise_after(method, calls, exc, message):
    """Wrap method so that its calls from number `calls` on raise exc(message)."""
    count = [0]
    mu = threading.Lock()

    @functools.wraps(method)
    def planted(self, *args):
        with mu:
            count[0] += 1
            n = count[0]
        if n >= calls:
            raise exc(message)
        return method(self, *args)

    return planted


def raising_requestvote():
    import raft

    raft.Raft.RequestVote = _raise_after(raft.Raft.RequestVote, 1, IndexError, "planted: list index out of range")


def raising_appendentries():
    import raft

    raft.Raft.AppendEntries = _raise_after(raft.Raft.AppendEntries, 5, IndexError, "planted: list index out of range")


def raising_ticker():
    import raft

    ticker = raft.Raft.ticker

    def planted(self):
        if self.me == 1:
            raise ZeroDivisionError("planted: division by zero in the ticker")
        return ticker(self)

    raft.Raft.ticker = planted


class _HoldingSendChan:
    """An applyCh whose send() first takes the peer's mu: a Raft that sends on
    applyCh while holding its lock."""

    def __init__(self, ch):
        self.ch = ch
        self.rf = None

    def send(self, value, *args, **kwargs):
        with self.rf.mu:
            return self.ch.send(value, *args, **kwargs)

    def __getattr__(self, name):
        return getattr(self.ch, name)


def applier_holds_mu():
    import tests.raft.config as config

    make = config.Make

    def planted(peers, me, persister, applyCh):
        ch = _HoldingSendChan(applyCh)
        ch.rf = rf = make(peers, me, persister, ch)
        return rf

    config.Make = planted


PLANTS = {
    "raising_requestvote": raising_requestvote,
    "raising_appendentries": raising_appendentries,
    "raising_ticker": raising_ticker,
    "applier_holds_mu": applier_holds_mu,
}


def pytest_configure(config):
    # Several bugs at once: PYLABS_PLANT=raising_appendentries,forgetful_thread.
    names = os.environ.get(PLANT_VAR, "").split(",")
    for name in names:
        if name not in PLANTS:
            raise RuntimeError(f"{PLANT_VAR}={name!r}: expected one of {sorted(PLANTS)}")
    for name in names:
        PLANTS[name]()


class _ReusingEnd:
    """A ClientEnd that passes one reply object per reply type, shared by all
    the ends and calls it is given: the reply-reuse bug gob exposes."""

    def __init__(self, end, replies):
        self.end = end
        self.replies = replies

    def Call(self, svcMeth, args, reply):
        reused = self.replies.setdefault(type(reply), type(reply)())
        ok = self.end.Call(svcMeth, args, reused)
        if ok:
            vars(reply).update(vars(reused))  # what the Raft then reads
        return ok


def raft_reuses_reply():
    import tests.raft.config as config

    make = config.Make
    # One reply per type for every peer (a package-level reply variable in Go):
    # after the first success anywhere, every rejection reads Success=True.
    # With one per peer, a leader that had no success yet backs up correctly.
    replies = {}

    def planted(peers, me, persister, applyCh):
        return make([_ReusingEnd(e, replies) for e in peers], me, persister, applyCh)

    config.Make = planted


PLANTS["raft_reuses_reply"] = raft_reuses_reply


def kill_hangs():
    """Kill() that never returns: the test's teardown is stuck."""
    import raft

    def planted(self):
        threading.Event().wait()

    raft.Raft.Kill = planted


PLANTS["kill_hangs"] = kill_hangs


def forgetful_thread():
    """Each peer starts a thread that never checks killed(): it outlives the test."""
    import time

    import tests.raft.config as config

    make = config.Make

    def forget():
        while True:
            time.sleep(0.05)

    def planted(peers, me, persister, applyCh):
        rf = make(peers, me, persister, applyCh)
        threading.Thread(target=forget, name=f"raft{me}-forgetful", daemon=True).start()
        return rf

    config.Make = planted


PLANTS["forgetful_thread"] = forgetful_thread
