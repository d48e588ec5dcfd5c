"""Lock mistakes made by a tiny lab-like service (two peers over labrpc), run by
test_lockwatch.py in a subprocess.  Copied to <tmp>/kvraft/scenario.py, so that
its locks are lab locks (lockwatch tells lab code by its folder); the detector is
driven with a made-up clock, so nothing here waits for real seconds of a cycle.

    python <tmp>/kvraft/scenario.py NAME     prints the reports, then "ended"
"""

import dataclasses
import sys
import threading
import time

import labgob
import labrpc
from lockwatch import core
from raft.util import Chan


def wait_until(cond, what, limit=30.0):
    end = time.monotonic() + limit
    while not cond():
        if time.monotonic() > end:
            sys.exit(f"scenario: {what} never happened")
        time.sleep(0.01)


def report_cycle():
    """Look at the graph as the watchdog would, CYCLE_SECONDS apart; print the report."""
    det = core.Detector()
    wait_until(lambda: core._cycles(core._edges()), "a cycle")
    assert det.check(100.0) is None  # a cycle is not a deadlock at once
    report = det.check(100.0 + core.CYCLE_SECONDS)
    print(report)
    return report


@labgob.Register
@dataclasses.dataclass
class PingReply:
    Me: int = 0


class Peer:
    def __init__(self, me, net):
        self.mu = threading.Lock()
        self.me = me
        self.net = net
        self.peer = None  # the other peer's ClientEnd

    def Ping(self, args, reply):
        with self.mu:
            reply.Me = self.me


def call_cycle():
    net = labrpc.MakeNetwork()
    peers = [Peer(i, net) for i in range(2)]
    for i, p in enumerate(peers):
        srv = labrpc.MakeServer()
        srv.AddService(labrpc.MakeService(p))
        net.AddServer(i, srv)
    for i, p in enumerate(peers):
        p.peer = net.MakeEnd(f"end{i}")
        net.Connect(f"end{i}", 1 - i)
        net.Enable(f"end{i}", True)
    # Both take their own lock first, then call: each handler waits for the other's lock.
    held = threading.Barrier(3)
    threads = []
    for p in peers:

        def run(p=p):
            with p.mu:
                held.wait()
                p.peer.Call("Peer.Ping", 0, PingReply())

        threads.append(threading.Thread(target=run, name=f"peer{p.me}-pinger", daemon=True))
    for t in threads:
        t.start()
    held.wait()
    report_cycle()
    for t in threads:  # the report broke the cycle: the calls return
        t.join(30)
    assert not any(t.is_alive() for t in threads), "the cycle was not broken"


def self_deadlock():
    p = Peer(0, None)
    err = []

    def ticker():
        with p.mu:
            try:
                p.Ping(0, PingReply())
            except core.SelfDeadlock as e:
                err.append(e)

    t = threading.Thread(target=ticker, name="peer0-ticker", daemon=True)
    t.start()
    t.join(30)
    print(err[0])


def held_across_sleep():
    p = Peer(0, None)
    with p.mu:
        time.sleep(0.001)


def held_across_start():
    p = Peer(0, None)
    with p.mu:
        t = threading.Thread(target=lambda: None, name="peer0-sender")
        t.start()
    t.join()


def chan_cycle():
    p = Peer(0, None)
    ch = Chan()
    known, held = threading.Event(), threading.Event()

    def applier():
        known.wait()
        with p.mu:
            held.set()
            ch.send("msg")

    def reader():
        ch.recv(timeout=0)  # it reads this channel (nothing was sent yet)
        known.set()
        held.wait()
        with p.mu:  # the service asks the peer something while the applier sends
            pass
        ch.recv()

    threads = [threading.Thread(target=applier, name="peer0-applier", daemon=True),
               threading.Thread(target=reader, name="service-reader", daemon=True)]
    for t in threads:
        t.start()
    report_cycle()
    ch.close()
    for t in threads:
        t.join(30)
    assert not any(t.is_alive() for t in threads), "the cycle was not broken"


if __name__ == "__main__":
    core.install()
    core.wrap_chan(Chan)
    core.wrap_call(labrpc.ClientEnd)
    labrpc.labrpc.call_waits = core.call_waits
    core.on_held_across = lambda text, *key: print(text)
    time.sleep = core.checked_sleep(time.sleep)
    threading.Thread.start = core.checked_start(threading.Thread.start)
    {"call_cycle": call_cycle, "self_deadlock": self_deadlock, "held_across_sleep": held_across_sleep,
     "held_across_start": held_across_start,
     "chan_cycle": chan_cycle}[sys.argv[1]]()
    print("ended")
