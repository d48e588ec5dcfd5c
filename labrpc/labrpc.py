"""labrpc: a simulated network that can lose, delay and reorder RPCs.

Twin of labrpc.go, with the same API and the same drop, delay and reordering
numbers.  It is built for testing Raft and the key/value service:

    net = MakeNetwork()                     # holds ends, servers, the rules
    end = net.MakeEnd(endname)              # a client end; starts disabled
    net.AddServer(servername, server)
    net.DeleteServer(servername)
    net.Connect(endname, servername)
    net.Enable(endname, True)               # enable/disable a client end
    net.Reliable(False)                     # drop and delay requests and replies
    net.LongReordering(True)                # hold some replies back a long time
    net.LongDelays(True)                    # long waits on disabled ends
    ok = end.Call("Raft.AppendEntries", args, reply)

    srv = MakeServer(); srv.AddService(MakeService(receiver))

Args and replies always travel as labgob bytes, so a server never sees the
caller's objects and byte counts are real.  Call fills `reply` in place on
success, as gob does: a reply field left at its zero value (its default) by
the handler is not on gob's wire, so the caller's field keeps what it held (a
reused reply shows stale values, as in Go).  A failed call leaves `reply`
untouched.

A handler that raises is a crashed server, as a panic in Go: the exception
ends the handler's thread, where threading.excepthook reports it (the test
suite fails the running test with it), and the caller's Call returns False.

Where Go starts a goroutine per request, this port does the request's work on
the calling thread (which blocks in Call anyway) and runs handlers on a pool
of reusable threads, so that a call costs no thread creation.  Waits are cut
short by Cleanup(), which makes every pending and later Call return False and
ends every thread the network started.
"""

import inspect
import random
import sys
import threading
import time
import typing
from _thread import allocate_lock, get_ident

import labgob
import timeline
from labgob.labgob import checkDefault, fill

from .nemesis import Hooks

__all__ = [
    "ClientEnd",
    "MakeNetwork",
    "MakeServer",
    "MakeService",
    "Network",
    "RPCError",
    "Server",
    "Service",
]

_HANDLER_IDLE_SECONDS = 1.0  # an idle pool thread exits after this long

# Under simulated time (--sim, see sim/) a function giving each message's one-way
# latency on the reliable network, in seconds; real time has none, as in Go.
reliable_latency = None

# The lock watchdog's wait-for graph (lockwatch/): caller thread ident -> (call, server, network).
call_waits = None


class RPCError(RuntimeError):
    """A call that can never succeed: unknown service or method."""


class ClientEnd:
    def __init__(self, endname, net):
        self.endname = endname
        self._net = net

    def Call(self, svcMeth, args, reply):
        """Send an RPC and wait for the answer.  True if a reply arrived (then
        `reply` holds it), False if the network lost the request or the reply,
        the server is dead or unreachable, or the network has been cleaned up."""
        return self._net._processReq(self.endname, svcMeth, args, reply)


class Network:
    def __init__(self):
        self.mu = threading.Lock()
        self.reliable = True
        self.longDelays = False  # pause a long time on send on a disabled connection
        self.longReordering = False  # sometimes delay replies a long time
        self.ends = {}  # ends, by name
        self.enabled = {}  # by end name
        self.servers = {}  # servers, by name
        self.connections = {}  # end name -> server name
        self.done = threading.Event()  # set when the network is cleaned up
        self.count = 0  # total RPC count, for statistics
        self.bytes = 0  # total bytes sent, for statistics
        self._pool = _HandlerPool()
        self.hooks = Hooks()  # a test's observer and the DuplicateLate nemesis (nemesis.py)

    def Cleanup(self):
        self.done.set()
        self._pool.close()

    def Reliable(self, yes):
        with self.mu:
            self.reliable = bool(yes)
        timeline.net("Reliable", bool(yes))

    def LongReordering(self, yes):
        with self.mu:
            self.longReordering = bool(yes)
        timeline.net("LongReordering", bool(yes))

    def LongDelays(self, yes):
        with self.mu:
            self.longDelays = bool(yes)

    def DuplicateLate(self, yes):
        """Deliver earlier requests again, late, dropping their replies (nemesis.py)."""
        self.hooks.set_duplicate(yes)

    def Observe(self, fn):
        """Call fn(event) for every request and reply (nemesis.Event); None stops it."""
        self.hooks.set_observer(fn)

    def _isServerDead(self, endname, servername, server):
        with self.mu:
            return not self.enabled.get(endname) or self.servers.get(servername) is not server

    def _sleep(self, seconds):
        """Sleep like the network would; False if the network was cleaned up meanwhile."""
        return not self.done.wait(seconds)

    def _processReq(self, endname, svcMeth, args, reply):
        if self.done.is_set():
            return False
        # An unencodable argument is the caller's bug: raise it in the caller's thread, as Go panics.
        args_bytes = labgob.encode(args)
        with self.mu:
            self.count += 1
            self.bytes += len(args_bytes)
            enabled = self.enabled.get(endname, False)
            servername = self.connections.get(endname)
            server = self.servers.get(servername) if servername is not None else None
            reliable = self.reliable
            longreordering = self.longReordering
            longdelays = self.longDelays
        rec = timeline.rpc_sent(endname, servername, svcMeth, args)  # None when not recording
        self.hooks.on_request(endname, servername, svcMeth, args, args_bytes)

        if not (enabled and servername is not None and server is not None):
            # Simulate no reply and an eventual timeout.
            if longdelays:
                # Let Raft tests check that leaders don't send RPCs sequentially.
                ms = random.randrange(7000)
            else:
                # Let kvraft tests check that clerks rotate through servers quickly.
                ms = random.randrange(100)
            self._sleep(ms / 1000)
            return False

        if not reliable:
            # Short delay, then maybe drop the request.
            if not self._sleep(random.randrange(27) / 1000):
                return False
            if random.randrange(1000) < 100:
                return False
        elif reliable_latency is not None and not self._sleep(reliable_latency()):
            return False

        # Run the handler on another thread, so that a dead server can be noticed
        # while its handler is still running (or hung).
        call = _PendingCall(server, svcMeth, args_bytes, type(reply))
        if not self._pool.submit(call.run):
            return False
        waits = call_waits
        if waits is not None:
            waits[get_ident()] = (call, servername, self)
        try:
            while not call.finished.acquire(timeout=0.1):
                if self.done.is_set() or self._isServerDead(endname, servername, server):
                    return False  # the handler runs on; its reply is thrown away
        finally:
            if waits is not None:
                waits.pop(get_ident(), None)

        if call.error is not None:
            raise call.error
        timeline.rpc_delivered(rec)
        if call.reply is None:
            return False  # the handler raised: the server crashed and never answers
        # The server may have died while the handler ran: then the reply is lost.
        if self._isServerDead(endname, servername, server):
            return False
        if not reliable and random.randrange(1000) < 100:
            return False  # drop the reply, as if the server never answered
        if reliable and reliable_latency is not None and not self._sleep(reliable_latency()):
            return False
        if longreordering and random.randrange(900) < 600:
            # Delay the reply for a while.
            ms = 200 + random.randrange(1 + random.randrange(2000))
            if not self._sleep(ms / 1000):
                return False
        reply_bytes = call.reply
        with self.mu:
            self.bytes += len(reply_bytes)
        decoded = labgob.decode(reply_bytes)
        checkDefault(reply)
        fill(reply, decoded)
        timeline.rpc_replied(rec)
        if self.hooks.active():
            self.hooks.on_reply(self, endname, servername, server, svcMeth, args, args_bytes, reply)
        return True

    def MakeEnd(self, endname):
        with self.mu:
            if endname in self.ends:
                raise RPCError(f"MakeEnd: {endname} already exists")
            e = ClientEnd(endname, self)
            self.ends[endname] = e
            self.enabled[endname] = False
            self.connections[endname] = None
            return e

    def AddServer(self, servername, rs):
        with self.mu:
            self.servers[servername] = rs
        timeline.net("AddServer", servername)

    def DeleteServer(self, servername):
        with self.mu:
            self.servers[servername] = None
        timeline.net("DeleteServer", servername)

    def Connect(self, endname, servername):
        """Connect a ClientEnd to a server.  A ClientEnd can only be connected once in its lifetime."""
        with self.mu:
            self.connections[endname] = servername
        timeline.connect(endname, servername)

    def Enable(self, endname, enabled):
        """Enable or disable a ClientEnd."""
        with self.mu:
            self.enabled[endname] = bool(enabled)
        timeline.net("Enable", endname, bool(enabled))

    def GetCount(self, servername):
        """The number of RPCs the server has received."""
        with self.mu:
            svr = self.servers.get(servername)
        if svr is None:
            raise RPCError(f"GetCount: no server {servername!r} (never added or deleted)")
        return svr.GetCount()

    def GetTotalCount(self):
        return self.count

    def GetTotalBytes(self):
        return self.bytes


def MakeNetwork():
    return Network()


class _PendingCall:
    """One handler invocation: runs on a pool thread, signals `finished` when done."""

    __slots__ = ("server", "svcMeth", "args", "reply_type", "reply", "error", "finished", "handler")

    def __init__(self, server, svcMeth, args_bytes, reply_type):
        self.server = server
        self.svcMeth = svcMeth
        self.args = args_bytes
        self.reply_type = reply_type
        self.reply = None
        self.error = None
        self.finished = allocate_lock()
        self.finished.acquire()
        self.handler = None  # the thread running it (lockwatch's wait-for graph)

    def run(self):
        self.handler = get_ident()
        try:
            try:
                handler = self.server.lookup(self.svcMeth)
            except RPCError as e:  # the caller named no handler: raised in the caller
                print(f"{e}", file=sys.stderr)
                self.error = e
                return
            try:
                self.reply = _callHandler(handler, self.svcMeth, self.args, self.reply_type)
            except ReplyTypeError:
                raise  # the caller's type, not the handler: the message says so
            except BaseException as e:
                # Go's handler panic ends the test binary.  Here it ends this pool
                # thread, whose uncaught exception threading.excepthook reports; the
                # caller sees no reply (self.reply stays None).
                # add_note's list, filled by hand: add_note itself is Python 3.11's
                note = f"(raised by the RPC handler {self.svcMeth}, run by labrpc)"
                e.__notes__ = [*getattr(e, "__notes__", ()), note]
                raise
        finally:
            self.finished.release()


class _HandlerPool:
    """Reusable threads that run handlers: an idle thread is handed the next
    task directly; the pool grows on demand and a thread idle too long exits."""

    def __init__(self):
        self.mu = threading.Lock()
        self.idle = []  # parked workers, most recently used last
        self.nthreads = 0
        self.closed = False

    def submit(self, fn):
        with self.mu:
            if self.closed:
                return False
            if self.idle:
                w = self.idle.pop()
                w.task = fn
                w.wake.release()
                return True
            self.nthreads += 1
            n = self.nthreads
        w = _Worker()
        threading.Thread(target=self._run, args=(w, fn), name=f"labrpc-handler-{n}", daemon=True).start()
        return True

    def _run(self, w, fn):
        while fn is not None:
            fn()
            with self.mu:
                if self.closed:
                    return
                self.idle.append(w)
            if not w.wake.acquire(timeout=_HANDLER_IDLE_SECONDS):
                with self.mu:
                    if w in self.idle:
                        self.idle.remove(w)
                        return
                w.wake.acquire()  # a task was handed over just as the wait ended
            fn, w.task = w.task, None

    def close(self):
        with self.mu:
            self.closed = True
            for w in self.idle:
                w.task = None
                w.wake.release()
            self.idle.clear()


class _Worker:
    __slots__ = ("wake", "task")

    def __init__(self):
        self.wake = allocate_lock()
        self.wake.acquire()
        self.task = None


class Server:
    """A collection of services sharing one incoming-RPC count."""

    def __init__(self):
        self.mu = threading.Lock()
        self.services = {}
        self.count = 0  # incoming RPCs

    def AddService(self, svc):
        with self.mu:
            self.services[svc.name] = svc

    def lookup(self, svcMeth):
        """Count an incoming RPC and return its handler (a bound method); RPCError if there is none."""
        with self.mu:
            self.count += 1
            serviceName, _, methodName = svcMeth.rpartition(".")
            service = self.services.get(serviceName)
        if service is None:
            raise RPCError(
                f"labrpc.Server.dispatch(): unknown service {serviceName} in {svcMeth}; "
                f"expecting one of {sorted(self.services)}"
            )
        return service.lookup(methodName, svcMeth)

    def dispatch(self, svcMeth, args_bytes, reply_type):
        return _callHandler(self.lookup(svcMeth), svcMeth, args_bytes, reply_type)

    def GetCount(self):
        with self.mu:
            return self.count


def MakeServer():
    return Server()


class ReplyTypeError(TypeError):
    """The caller's reply type cannot be made fresh (T()) for the handler: a field without
    a default.  Raised before the handler runs, so its note names the type, not the handler."""


def _fresh(reply_type, svcMeth):
    try:
        return reply_type()
    except TypeError as e:
        raise ReplyTypeError(
            f"labrpc: cannot make a fresh {reply_type.__name__} for the reply of {svcMeth} ({e}); "
            f"{labgob.labgob.NO_DEFAULT_ADVICE}"
        ) from None


def _callHandler(method, svcMeth, args_bytes, reply_type):
    """Run a handler on fresh args and a fresh reply; return the reply's bytes."""
    args = labgob.decode(args_bytes)
    reply = _fresh(reply_type, svcMeth)
    if method(args, reply) is not None:
        raise TypeError(
            f"labrpc: handler {svcMeth} returned a value; a handler returns nothing "
            "and answers by filling in its reply"
        )
    return labgob.encode(reply)


class Service:
    """An object with methods that can be called via RPC: a single server
    may have more than one Service."""

    def __init__(self, rcvr):
        self.rcvr = rcvr
        self.name = type(rcvr).__name__
        self.methods = {}
        for mname, fn in inspect.getmembers(type(rcvr), inspect.isfunction):
            if mname[:1].isupper() and _is_handler(fn):
                self.methods[mname] = getattr(rcvr, mname)

    def lookup(self, methname, svcMeth):
        method = self.methods.get(methname)
        if method is None:
            raise RPCError(
                f"labrpc.Service.dispatch(): unknown method {methname} in {svcMeth}; "
                f"expecting one of {sorted(self.methods)}"
            )
        return method

    def dispatch(self, methname, svcMeth, args_bytes, reply_type):
        return _callHandler(self.lookup(methname, svcMeth), svcMeth, args_bytes, reply_type)


def MakeService(rcvr):
    return Service(rcvr)


# Types a reply can never be: Go's reply must be a pointer, which the handler fills in.
_VALUE_TYPES = (bool, int, float, complex, str, bytes, bytearray, tuple, frozenset, type(None))
_NOT_CALLED_NOW = inspect.CO_GENERATOR | inspect.CO_COROUTINE | inspect.CO_ASYNC_GENERATOR
_handler_cache = {}  # function -> whether it has a handler's shape


def _is_handler(fn):
    """Twin of Go's handler test: exactly (args, reply) besides self, a reply that
    can be filled in (a pointer in Go), and no result.  Python states types only
    in annotations, so an annotated reply of a value type (`snapshot: bytes`) or a
    result (`-> int`) rules a method out, as does being a generator."""
    known = _handler_cache.get(fn)
    if known is None:
        known = _handler_cache[fn] = _handler_shape(fn)
    return known


def _handler_shape(fn):
    try:
        params = list(inspect.signature(fn).parameters.values())[1:]
    except (TypeError, ValueError):
        return False
    if len(params) != 2 or any(p.kind not in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) for p in params):
        return False
    if fn.__code__.co_flags & _NOT_CALLED_NOW:
        return False
    try:
        hints = typing.get_type_hints(fn)
    except Exception:
        hints = dict(getattr(fn, "__annotations__", {}))
    if "return" in hints and hints["return"] not in (None, type(None)):
        return False
    reply_type = hints.get(params[1].name)
    if reply_type is not None and (typing.get_origin(reply_type) or reply_type) in _VALUE_TYPES:
        return False
    # A `return x` in the body is not ruled out here: `return self.handle(args, reply)`
    # is a common way to write a handler, and None is what it returns.  A handler that
    # does return a value fails when called (_callHandler), naming itself.
    return True
