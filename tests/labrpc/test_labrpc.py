"""Port of labrpc/test_test.go, plus checks of errors, Cleanup and threads."""

import queue
import threading
import time
from dataclasses import dataclass

import pytest

import labgob
import labrpc
from labrpc import MakeNetwork, MakeServer, MakeService


@labgob.Register
@dataclass
class JunkArgs:
    X: int = 0


@labgob.Register
@dataclass
class JunkReply:
    X: str = ""


# Python ints and strs cannot be filled in place, so the *int and *string replies become dataclasses.
@labgob.Register
@dataclass
class IntReply:
    V: int = 0


@labgob.Register
@dataclass
class StrReply:
    V: str = ""


def atoi(s):
    try:
        return int(s)
    except ValueError:
        return 0


class JunkServer:
    def __init__(self):
        self.mu = threading.Lock()
        self.log1 = []
        self.log2 = []
        self.dead = threading.Event()

    def Handler1(self, args, reply):
        with self.mu:
            self.log1.append(args)
            reply.V = atoi(args)

    def Handler2(self, args, reply):
        with self.mu:
            self.log2.append(args)
            reply.V = "handler2-" + str(args)

    def Handler3(self, args, reply):
        with self.mu:
            # Same 20 s as Go, but an Event wait lets Kill() end the thread when the test is over.
            self.dead.wait(20)
            reply.V = -args

    # Python has no pointer/value distinction: Handler4 and Handler5 both take a JunkArgs.
    def Handler4(self, args, reply):
        reply.X = "pointer"

    def Handler5(self, args, reply):
        reply.X = "no pointer"

    def Handler6(self, args, reply):
        with self.mu:
            reply.V = len(args)

    def Handler7(self, args, reply):
        with self.mu:
            reply.V = ""
            for i in range(args):
                reply.V = reply.V + "y"

    def Kill(self):
        self.dead.set()


# Only a hang waits this long: each wait below ends as soon as what it waits for has happened.
LIVENESS = 30.0


def assert_threads_end(before, what):
    """Every thread started since `before` ends (the network's threads end with Cleanup())."""
    for t in threading.enumerate():
        if t not in before:
            t.join(LIVENESS)
    left = [t.name for t in threading.enumerate() if t not in before and t.is_alive()]
    assert not left, f"threads still alive {what}: {left}"


@pytest.fixture(autouse=True)
def no_leftover_threads():
    before = set(threading.enumerate())
    yield
    assert_threads_end(before, "after the test")


def startThreads(n, fn):
    ts = [threading.Thread(target=fn, args=(i,), daemon=True) for i in range(n)]
    for t in ts:
        t.start()
    return ts


def TestBasic():
    rn = MakeNetwork()
    try:
        e = rn.MakeEnd("end1-99")

        js = JunkServer()
        svc = MakeService(js)

        rs = MakeServer()
        rs.AddService(svc)
        rn.AddServer("server99", rs)

        rn.Connect("end1-99", "server99")
        rn.Enable("end1-99", True)

        reply = StrReply()
        e.Call("JunkServer.Handler2", 111, reply)
        if reply.V != "handler2-111":
            pytest.fail("wrong reply from Handler2")

        reply = IntReply()
        e.Call("JunkServer.Handler1", "9099", reply)
        if reply.V != 9099:
            pytest.fail("wrong reply from Handler1")
    finally:
        rn.Cleanup()


def TestTypes():
    rn = MakeNetwork()
    try:
        e = rn.MakeEnd("end1-99")

        js = JunkServer()
        svc = MakeService(js)

        rs = MakeServer()
        rs.AddService(svc)
        rn.AddServer("server99", rs)

        rn.Connect("end1-99", "server99")
        rn.Enable("end1-99", True)

        args = JunkArgs()
        reply = JunkReply()
        e.Call("JunkServer.Handler4", args, reply)
        if reply.X != "pointer":
            pytest.fail("wrong reply from Handler4")

        args = JunkArgs()
        reply = JunkReply()
        e.Call("JunkServer.Handler5", args, reply)
        if reply.X != "no pointer":
            pytest.fail("wrong reply from Handler5")
    finally:
        rn.Cleanup()


# does net.Enable(endname, False) really disconnect a client?
def TestDisconnect():
    rn = MakeNetwork()
    try:
        e = rn.MakeEnd("end1-99")

        js = JunkServer()
        svc = MakeService(js)

        rs = MakeServer()
        rs.AddService(svc)
        rn.AddServer("server99", rs)

        rn.Connect("end1-99", "server99")

        reply = StrReply()
        e.Call("JunkServer.Handler2", 111, reply)
        if reply.V != "":
            pytest.fail("unexpected reply from Handler2")

        rn.Enable("end1-99", True)

        reply = IntReply()
        e.Call("JunkServer.Handler1", "9099", reply)
        if reply.V != 9099:
            pytest.fail("wrong reply from Handler1")
    finally:
        rn.Cleanup()


# test net.GetCount()
def TestCounts():
    rn = MakeNetwork()
    try:
        e = rn.MakeEnd("end1-99")

        js = JunkServer()
        svc = MakeService(js)

        rs = MakeServer()
        rs.AddService(svc)
        rn.AddServer(99, rs)

        rn.Connect("end1-99", 99)
        rn.Enable("end1-99", True)

        for i in range(17):
            reply = StrReply()
            e.Call("JunkServer.Handler2", i, reply)
            wanted = "handler2-" + str(i)
            if reply.V != wanted:
                pytest.fail(f"wrong reply {reply.V} from Handler1, expecting {wanted}")

        n = rn.GetCount(99)
        if n != 17:
            pytest.fail(f"wrong GetCount() {n}, expected 17")
    finally:
        rn.Cleanup()


# test net.GetTotalBytes()
def TestBytes():
    rn = MakeNetwork()
    try:
        e = rn.MakeEnd("end1-99")

        js = JunkServer()
        svc = MakeService(js)

        rs = MakeServer()
        rs.AddService(svc)
        rn.AddServer(99, rs)

        rn.Connect("end1-99", 99)
        rn.Enable("end1-99", True)

        for i in range(17):
            args = "x" * 71
            args = args + args
            args = args + args
            reply = IntReply()
            e.Call("JunkServer.Handler6", args, reply)
            wanted = len(args)
            if reply.V != wanted:
                pytest.fail(f"wrong reply {reply.V} from Handler6, expecting {wanted}")

        n = rn.GetTotalBytes()
        # Same arithmetic as Go, which does not depend on gob: 4828 = 17*284 payload bytes, 6000 allows ~69 bytes/call of encoding.
        if n < 17 * 284 or n > 6000:
            pytest.fail(f"wrong GetTotalBytes() {n}, expected about 5000")

        for i in range(17):
            args = 107
            reply = StrReply()
            e.Call("JunkServer.Handler7", args, reply)
            wanted = args
            if len(reply.V) != wanted:
                pytest.fail(f"wrong reply len={len(reply.V)} from Handler6, expecting {wanted}")

        nn = rn.GetTotalBytes() - n
        # Same arithmetic as Go: 1800 is just under 17*107 = 1819 payload bytes, 2500 allows ~40 bytes/call of encoding.
        if nn < 1800 or nn > 2500:
            pytest.fail(f"wrong GetTotalBytes() {nn}, expected about 2000")
        print(f"TestBytes: {n} bytes, then {nn} bytes")
    finally:
        rn.Cleanup()


# test RPCs from concurrent ClientEnds
def TestConcurrentMany():
    rn = MakeNetwork()
    try:
        js = JunkServer()
        svc = MakeService(js)

        rs = MakeServer()
        rs.AddService(svc)
        rn.AddServer(1000, rs)

        ch = queue.Queue()
        errors = []

        nclients = 20
        nrpcs = 10

        def client(i):
            n = 0
            try:
                e = rn.MakeEnd(i)
                rn.Connect(i, 1000)
                rn.Enable(i, True)

                for j in range(nrpcs):
                    arg = i * 100 + j
                    reply = StrReply()
                    e.Call("JunkServer.Handler2", arg, reply)
                    wanted = "handler2-" + str(arg)
                    if reply.V != wanted:
                        errors.append(f"wrong reply {reply.V} from Handler1, expecting {wanted}")
                        return
                    n += 1
            finally:
                ch.put(n)

        startThreads(nclients, client)

        total = 0
        for ii in range(nclients):
            x = ch.get()
            total += x

        if errors:
            pytest.fail(errors[0])

        if total != nclients * nrpcs:
            pytest.fail(f"wrong number of RPCs completed, got {total}, expected {nclients * nrpcs}")

        n = rn.GetCount(1000)
        if n != total:
            pytest.fail(f"wrong GetCount() {n}, expected {total}")
    finally:
        rn.Cleanup()


# test unreliable
def TestUnreliable():
    rn = MakeNetwork()
    try:
        rn.Reliable(False)

        js = JunkServer()
        svc = MakeService(js)

        rs = MakeServer()
        rs.AddService(svc)
        rn.AddServer(1000, rs)

        ch = queue.Queue()
        errors = []

        nclients = 300

        def client(i):
            n = 0
            try:
                e = rn.MakeEnd(i)
                rn.Connect(i, 1000)
                rn.Enable(i, True)

                arg = i * 100
                reply = StrReply()
                ok = e.Call("JunkServer.Handler2", arg, reply)
                if ok:
                    wanted = "handler2-" + str(arg)
                    if reply.V != wanted:
                        errors.append(f"wrong reply {reply.V} from Handler1, expecting {wanted}")
                        return
                    n += 1
            finally:
                ch.put(n)

        startThreads(nclients, client)

        total = 0
        for ii in range(nclients):
            x = ch.get()
            total += x

        if errors:
            pytest.fail(errors[0])

        if total == nclients or total == 0:
            pytest.fail("all RPCs succeeded despite unreliable")
    finally:
        rn.Cleanup()


# test concurrent RPCs from a single ClientEnd
def TestConcurrentOne():
    rn = MakeNetwork()
    try:
        js = JunkServer()
        svc = MakeService(js)

        rs = MakeServer()
        rs.AddService(svc)
        rn.AddServer(1000, rs)

        e = rn.MakeEnd("c")
        rn.Connect("c", 1000)
        rn.Enable("c", True)

        ch = queue.Queue()
        errors = []

        nrpcs = 20

        def client(i):
            n = 0
            try:
                arg = 100 + i
                reply = StrReply()
                e.Call("JunkServer.Handler2", arg, reply)
                wanted = "handler2-" + str(arg)
                if reply.V != wanted:
                    errors.append(f"wrong reply {reply.V} from Handler2, expecting {wanted}")
                    return
                n += 1
            finally:
                ch.put(n)

        startThreads(nrpcs, client)

        total = 0
        for ii in range(nrpcs):
            x = ch.get()
            total += x

        if errors:
            pytest.fail(errors[0])

        if total != nrpcs:
            pytest.fail(f"wrong number of RPCs completed, got {total}, expected {nrpcs}")

        with js.mu:
            if len(js.log2) != nrpcs:
                pytest.fail("wrong number of RPCs delivered")

        n = rn.GetCount(1000)
        if n != total:
            pytest.fail(f"wrong GetCount() {n}, expected {total}")
    finally:
        rn.Cleanup()


# regression: an RPC delayed while its end was disabled must not hold up
# later RPCs made after the end is enabled.
def TestRegression1():
    rn = MakeNetwork()
    try:
        js = JunkServer()
        svc = MakeService(js)

        rs = MakeServer()
        rs.AddService(svc)
        rn.AddServer(1000, rs)

        e = rn.MakeEnd("c")
        rn.Connect("c", 1000)

        # these RPCs start while the end is disabled, so they are delayed and fail.
        rn.Enable("c", False)
        ch = queue.Queue()
        nrpcs = 20

        def client(i):
            ok = False
            try:
                arg = 100 + i
                reply = StrReply()
                e.Call("JunkServer.Handler2", arg, reply)
                ok = True
            finally:
                ch.put(ok)

        startThreads(nrpcs, client)

        time.sleep(0.100)

        # once the end is enabled, an RPC must complete quickly.
        t0 = time.monotonic()
        rn.Enable("c", True)
        arg = 99
        reply = StrReply()
        e.Call("JunkServer.Handler2", arg, reply)
        wanted = "handler2-" + str(arg)
        if reply.V != wanted:
            pytest.fail(f"wrong reply {reply.V} from Handler2, expecting {wanted}")
        dur = time.monotonic() - t0

        if dur > 0.03:
            pytest.fail(f"RPC took too long ({dur}) after Enable")

        for ii in range(nrpcs):
            ch.get()

        with js.mu:
            if len(js.log2) != 1:
                pytest.fail(f"wrong number ({len(js.log2)}) of RPCs delivered, expected 1")

        n = rn.GetCount(1000)
        if n != 1:
            pytest.fail(f"wrong GetCount() {n}, expected 1")
    finally:
        rn.Cleanup()


# an RPC stuck in a server's handler must return once DeleteServer() removes the server.
def TestKilled():
    rn = MakeNetwork()
    js = JunkServer()
    try:
        e = rn.MakeEnd("end1-99")

        svc = MakeService(js)

        rs = MakeServer()
        rs.AddService(svc)
        rn.AddServer("server99", rs)

        rn.Connect("end1-99", "server99")
        rn.Enable("end1-99", True)

        doneCh = queue.Queue()

        def caller():
            reply = IntReply()
            ok = e.Call("JunkServer.Handler3", 99, reply)
            doneCh.put(ok)

        threading.Thread(target=caller, daemon=True).start()

        time.sleep(1.000)

        try:
            doneCh.get(timeout=0.100)
            pytest.fail("Handler3 should not have returned yet")
        except queue.Empty:
            pass

        rn.DeleteServer("server99")

        try:
            x = doneCh.get(timeout=0.100)
        except queue.Empty:
            pytest.fail("Handler3 should return after DeleteServer()")
        if x is not False:
            pytest.fail("Handler3 returned successfully despite DeleteServer()")
    finally:
        js.Kill()
        rn.Cleanup()


def TestBenchmark():
    rn = MakeNetwork()
    try:
        e = rn.MakeEnd("end1-99")

        js = JunkServer()
        svc = MakeService(js)

        rs = MakeServer()
        rs.AddService(svc)
        rn.AddServer("server99", rs)

        rn.Connect("end1-99", "server99")
        rn.Enable("end1-99", True)

        t0 = time.monotonic()
        n = 100000
        for iters in range(n):
            reply = StrReply()
            e.Call("JunkServer.Handler2", 111, reply)
            if reply.V != "handler2-111":
                pytest.fail("wrong reply from Handler2")
        print(f"{time.monotonic() - t0:.3f}s for {n}")
    finally:
        rn.Cleanup()


# ---------------------------------------------------------------------------
# Checks with no Go twin.


def make_junk_network():
    rn = MakeNetwork()
    js = JunkServer()
    rs = MakeServer()
    rs.AddService(MakeService(js))
    rn.AddServer("server99", rs)
    e = rn.MakeEnd("end1-99")
    rn.Connect("end1-99", "server99")
    rn.Enable("end1-99", True)
    return rn, js, e


def test_unknown_service_raises_rpc_error_naming_known_services(capsys):
    rn, js, e = make_junk_network()
    try:
        with pytest.raises(labrpc.RPCError) as info:
            e.Call("NoSuchServer.Handler2", 111, StrReply())
        assert "NoSuchServer" in str(info.value)
        assert "JunkServer" in str(info.value)
    finally:
        rn.Cleanup()
    # Go's log.Fatalf prints the message too.
    assert capsys.readouterr().err == str(info.value) + "\n"


def test_unknown_method_raises_rpc_error_naming_known_methods(capsys):
    rn, js, e = make_junk_network()
    try:
        with pytest.raises(labrpc.RPCError) as info:
            e.Call("JunkServer.Handler8", 111, StrReply())
        msg = str(info.value)
        assert "Handler8" in msg
        for h in range(1, 8):
            assert f"Handler{h}" in msg, msg
        # Kill takes no (args, reply), so it is not a handler.
        assert "Kill" not in msg, msg
        with pytest.raises(labrpc.RPCError):
            e.Call("JunkServer.Kill", 111, StrReply())
        # the network still works afterwards
        reply = StrReply()
        assert e.Call("JunkServer.Handler2", 111, reply)
        assert reply.V == "handler2-111"
    finally:
        rn.Cleanup()
    err = capsys.readouterr().err.splitlines()
    assert [line.split(";")[0] for line in err] == [
        "labrpc.Service.dispatch(): unknown method Handler8 in JunkServer.Handler8",
        "labrpc.Service.dispatch(): unknown method Kill in JunkServer.Kill",
    ]


def test_unencodable_args_raise_in_caller():
    rn, js, e = make_junk_network()
    try:
        with pytest.raises(TypeError, match="tuple"):
            e.Call("JunkServer.Handler2", (1, 2), StrReply())
    finally:
        rn.Cleanup()


def test_failed_call_leaves_reply_untouched():
    rn, js, e = make_junk_network()
    try:
        rn.Enable("end1-99", False)
        reply = StrReply("keep")
        assert e.Call("JunkServer.Handler2", 111, reply) is False
        assert reply.V == "keep"
        assert js.log2 == []
    finally:
        rn.Cleanup()


class _EndlessDelays:
    """labrpc's random module for a network whose every random delay outlasts any test run."""

    @staticmethod
    def randrange(n):
        return 10**9  # milliseconds: eleven days


def test_cleanup_ends_pending_call_and_network_threads(monkeypatch):
    before = set(threading.enumerate())
    rn, js, e = make_junk_network()
    # make some handler threads exist, then park a call on a disabled end: with endless
    # delays it can end only through Cleanup()
    for i in range(5):
        assert e.Call("JunkServer.Handler2", i, StrReply())
    monkeypatch.setattr(labrpc.labrpc, "random", _EndlessDelays)
    rn.LongDelays(True)
    rn.Enable("end1-99", False)
    result = []
    reply = StrReply("keep")
    caller = threading.Thread(target=lambda: result.append(e.Call("JunkServer.Handler2", 1, reply)),
                              daemon=True)
    caller.start()
    while rn.GetTotalCount() < 6 and caller.is_alive():  # counted: now in its delay
        time.sleep(0.01)

    rn.Cleanup()
    caller.join(LIVENESS)
    assert not caller.is_alive(), "the pending Call did not end with Cleanup()"
    assert result == [False]
    assert reply.V == "keep"

    # a Call after Cleanup fails at once, even on an enabled end: it sends nothing, waits for nothing
    rn.Enable("end1-99", True)
    sent = rn.GetTotalCount()
    monkeypatch.setattr(rn, "_sleep", lambda seconds: pytest.fail(f"a Call after Cleanup() waited {seconds} s"))
    assert e.Call("JunkServer.Handler2", 2, StrReply()) is False
    assert rn.GetTotalCount() == sent

    assert_threads_end(before, "after Cleanup()")


# ---------------------------------------------------------------------------
# A handler that raises is a crashed server, as a panic in Go.


@labgob.Register
@dataclass
class BallotReply:
    Term: int = 0
    VoteGranted: bool = False


class Crashy:
    def __init__(self):
        self.calls = 0

    def Vote(self, args, reply):
        self.calls += 1
        reply.Term = args
        reply.VoteGranted = args % 2 == 1

    def Fails(self, args, reply):
        raise IndexError(f"planted: list index {args} out of range")

    def Answers(self, args, reply):
        return 42  # a result: Go would not have registered it; here the call fails


def crashy_network():
    rn = MakeNetwork()
    srv = MakeServer()
    srv.AddService(MakeService(Crashy()))
    rn.AddServer("crashy", srv)
    e = rn.MakeEnd("end-crashy")
    rn.Connect("end-crashy", "crashy")
    rn.Enable("end-crashy", True)
    return rn, e


@pytest.fixture
def thread_exceptions(monkeypatch):
    """Take over threading.excepthook (from tests/gotest.py, which would fail this test)."""
    seen = []
    monkeypatch.setattr(threading, "excepthook", seen.append)
    return seen


def test_raising_handler_crashes_its_thread_and_the_call_fails(thread_exceptions):
    rn, e = crashy_network()
    try:
        reply = BallotReply(7, True)
        # on a reliable network, to a live server, only a reply or the handler's crash ends a call
        assert e.Call("Crashy.Fails", 5, reply) is False
        assert reply == BallotReply(7, True)  # untouched, as on any failed call
        deadline = time.monotonic() + LIVENESS
        while not thread_exceptions and time.monotonic() < deadline:
            time.sleep(0.01)
        assert len(thread_exceptions) == 1
        crash = thread_exceptions[0]
        assert crash.exc_type is IndexError
        assert "list index 5" in str(crash.exc_value)
        assert crash.thread.name.startswith("labrpc-handler-")
        assert "Crashy.Fails" in "".join(getattr(crash.exc_value, "__notes__", []))
        # the network and the other handlers go on working
        assert e.Call("Crashy.Vote", 3, reply) and reply == BallotReply(3, True)
    finally:
        rn.Cleanup()


def test_handler_returning_a_value_crashes(thread_exceptions):
    rn, e = crashy_network()
    try:
        assert e.Call("Crashy.Answers", 1, BallotReply()) is False
        deadline = time.monotonic() + LIVENESS
        while not thread_exceptions and time.monotonic() < deadline:
            time.sleep(0.01)
        assert [c.exc_type for c in thread_exceptions] == [TypeError]
        assert "returned a value" in str(thread_exceptions[0].exc_value)
    finally:
        rn.Cleanup()


def test_reply_type_without_defaults_names_the_type_not_the_handler(thread_exceptions, capsys):
    @dataclass
    class NoDefaults:  # a reply type a student might write: Go's fields all have zero values
        Term: int
        VoteGranted: bool = False

    labgob.Register(NoDefaults)
    err = capsys.readouterr().err
    assert "labgob error: field Term of NoDefaults has no default: give every field a default" in err, err
    rn, e = crashy_network()
    try:
        assert e.Call("Crashy.Vote", 3, NoDefaults(Term=0)) is False
        deadline = time.monotonic() + LIVENESS
        while not thread_exceptions and time.monotonic() < deadline:
            time.sleep(0.01)
        assert [c.exc_type for c in thread_exceptions] == [labrpc.labrpc.ReplyTypeError]
        exc = thread_exceptions[0].exc_value
        assert "cannot make a fresh NoDefaults for the reply of Crashy.Vote" in str(exc)
        assert "give every field a default (Go's zero value" in str(exc)
        assert not getattr(exc, "__notes__", []), "the handler never ran: no note may blame it"
    finally:
        rn.Cleanup()


# ---------------------------------------------------------------------------
# Replies are filled as gob fills them: a zero-valued field is not sent.


def test_reused_reply_keeps_stale_fields_as_in_go(capsys):
    rn, e = crashy_network()
    try:
        reply = BallotReply()
        assert e.Call("Crashy.Vote", 3, reply) and reply == BallotReply(3, True)
        # Reusing it: the handler's VoteGranted=False is the zero value, not sent,
        # so the stale True stays, and labgob warns (printed once per process).
        assert e.Call("Crashy.Vote", 4, reply) and reply == BallotReply(4, True)
        assert e.Call("Crashy.Vote", 0, reply) and reply == BallotReply(4, True)
        # A fresh reply each time shows what the server said.
        fresh = BallotReply()
        assert e.Call("Crashy.Vote", 4, fresh) and fresh == BallotReply(4, False)
    finally:
        rn.Cleanup()
    capsys.readouterr()


# ---------------------------------------------------------------------------
# Which methods are handlers: Go takes (args, reply) with reply a pointer and no result.


@labgob.Register
@dataclass
class SnapArgs:
    Index: int = 0


class Shapes:
    def Good(self, args, reply):
        if args < 0:
            return  # a bare return is no result
        reply.V = args

    def Annotated(self, args: SnapArgs, reply: IntReply) -> None:
        reply.V = args.Index

    def Snapshot(self, index: int, snapshot: bytes):  # Raft.Snapshot: a value, not a reply
        pass

    def Result(self, args, reply) -> int:
        return 0

    def Delegates(self, args, reply):
        return self.Good(args, reply)  # returns None: a handler all the same

    def Generator(self, args, reply):
        yield reply

    def Three(self, a, b, c):
        pass

    def lower(self, args, reply):
        pass


def test_only_go_shaped_methods_are_handlers(capsys):
    svc = MakeService(Shapes())
    assert sorted(svc.methods) == ["Annotated", "Delegates", "Good"]
    rn = MakeNetwork()
    srv = MakeServer()
    srv.AddService(svc)
    rn.AddServer("s", srv)
    e = rn.MakeEnd("e")
    rn.Connect("e", "s")
    rn.Enable("e", True)
    try:
        reply = IntReply()
        assert e.Call("Shapes.Annotated", SnapArgs(6), reply) and reply.V == 6
        assert e.Call("Shapes.Delegates", 7, reply) and reply.V == 7
        for name in ["Snapshot", "Result", "Generator", "Three", "lower"]:
            with pytest.raises(labrpc.RPCError, match=f"unknown method {name} in Shapes.{name}"):
                e.Call(f"Shapes.{name}", 1, IntReply())
    finally:
        rn.Cleanup()
    err = capsys.readouterr().err
    assert err.count("labrpc.Service.dispatch(): unknown method") == 5
