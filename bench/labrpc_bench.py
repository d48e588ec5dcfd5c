"""labrpc benchmarks: sequential round-trip rate, and threads alive under many concurrent calls."""

import threading
import time
from dataclasses import dataclass

import labgob
from labrpc import MakeNetwork, MakeServer, MakeService


@labgob.Register
@dataclass
class BenchReply:
    V: str = ""


class BenchServer:
    def __init__(self):
        self.mu = threading.Lock()
        self.n = 0

    # The same work as labrpc's JunkServer.Handler2.
    def Handler2(self, args, reply):
        with self.mu:
            self.n += 1
            reply.V = "handler2-" + str(args)


def _make_network():
    net = MakeNetwork()
    srv = MakeServer()
    srv.AddService(MakeService(BenchServer()))
    net.AddServer("server", srv)
    return net


def round_trips(ncalls=20000):
    """Sequential calls from one client on a reliable network; returns (calls per second, seconds)."""
    net = _make_network()
    try:
        end = net.MakeEnd("client")
        net.Connect("client", "server")
        net.Enable("client", True)
        for i in range(100):  # warm up: handler threads exist before timing starts
            end.Call("BenchServer.Handler2", 111, BenchReply())
        t0 = time.perf_counter()
        for i in range(ncalls):
            reply = BenchReply()
            if not end.Call("BenchServer.Handler2", 111, reply) or reply.V != "handler2-111":
                raise AssertionError(f"call {i} failed on a reliable network: {reply!r}")
        elapsed = time.perf_counter() - t0
    finally:
        net.Cleanup()
    return ncalls / elapsed, elapsed


def peak_threads(ncalls=1000):
    """`ncalls` concurrent calls (one caller thread each) on an unreliable network with long
    reordering; samples the live threads throughout.  Returns a dict of figures."""
    net = _make_network()
    net.Reliable(False)
    net.LongReordering(True)
    before = set(threading.enumerate())
    mine = set()  # caller threads and the sampler: everything else new was started by the network
    peak = len(before)
    peak_network = 0
    stop = threading.Event()

    def sample():
        nonlocal peak, peak_network
        alive = threading.enumerate()
        peak = max(peak, len(alive))
        peak_network = max(peak_network, sum(1 for t in alive if t not in before and t not in mine))

    def sampler():
        while not stop.is_set():
            sample()
            stop.wait(0.002)

    ok = [0]
    oklock = threading.Lock()
    start = threading.Event()

    try:
        end = net.MakeEnd("client")
        net.Connect("client", "server")
        net.Enable("client", True)

        def caller(i):
            start.wait()
            reply = BenchReply()
            if end.Call("BenchServer.Handler2", i, reply):
                if reply.V != "handler2-" + str(i):
                    raise AssertionError(f"wrong reply {reply.V!r} to call {i}")
                with oklock:
                    ok[0] += 1

        s = threading.Thread(target=sampler, name="bench-sampler", daemon=True)
        callers = [threading.Thread(target=caller, args=(i,), name=f"bench-caller-{i}", daemon=True)
                   for i in range(ncalls)]
        mine.update(callers)
        mine.add(s)
        for t in callers:
            t.start()
        s.start()
        sample()  # every caller is alive and waiting: the run starts at its peak of callers
        t0 = time.perf_counter()
        start.set()
        for t in callers:
            t.join()
        elapsed = time.perf_counter() - t0
        stop.set()
        s.join()
    finally:
        stop.set()
        net.Cleanup()
    return {
        "peak": peak,
        "before": len(before),
        "callers": ncalls,
        "network": peak_network,
        "succeeded": ok[0],
        "seconds": elapsed,
    }


def _settle(before, timeout=3.0):
    """Wait for threads started since `before` to end, so one benchmark does not count another's."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if all(t in before for t in threading.enumerate()):
            return
        time.sleep(0.02)


def run(ncalls=20000, nconcurrent=1000):
    before = set(threading.enumerate())
    rate, elapsed = round_trips(ncalls)
    _settle(before)
    print(f"labrpc: {ncalls} sequential round trips, reliable network: {elapsed:.2f} s, "
          f"{rate:,.0f} calls/s ({1e6 / rate:.1f} us/call)")
    r = peak_threads(nconcurrent)
    print(f"labrpc: {r['callers']} concurrent calls, unreliable network with long reordering: "
          f"peak {r['peak']} threads alive ({r['before']} before the run, {r['callers']} callers, "
          f"1 sampler; at most {r['network']} threads started by the network at once); "
          f"{r['succeeded']} calls succeeded in {r['seconds']:.2f} s")
