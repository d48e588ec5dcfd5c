"""The clerk: the client side of the key/value service."""

import random
import secrets
import time

from raft.util import DPrintf

from .common import OK, ErrBadArgs, ErrNoKey, GetArgs, GetReply, PutAppendArgs, PutAppendReply
from .common import check_get_args, check_put_append_args

# After every server has failed once in a row, pause before the next round so that
# clerks waiting out an election do not spin on the CPU the servers need.
RETRY_ROUND_PAUSE = 0.020


def nrand():
    """A random 62-bit client id."""
    return secrets.randbits(62)


class Clerk:
    def __init__(self, servers):
        if not servers:
            raise ValueError("kvraft.MakeClerk: no servers (the list of ends is empty)")
        self.servers = servers
        self.clientId = nrand()
        self.seqNum = 0
        self.leader = random.randrange(len(servers))  # the server that answered last
        self.failures = 0  # failed attempts in a row

    def Get(self, key):
        """Fetch the current value for a key; "" if the key does not exist.
        Keeps trying forever in the face of all other errors."""
        args = GetArgs(Key=key, ClientId=self.clientId, SeqNum=self.seqNum + 1)
        check_get_args(args)  # Go's compiler checks the types; we must, before sending
        self.seqNum += 1
        while True:
            reply = GetReply()
            if self._call("KVServer.Get", args, reply):
                return reply.Value if reply.Err == OK else ""

    def PutAppend(self, key, value, op):
        """Shared by Put and Append; op is "Put" or "Append"."""
        args = PutAppendArgs(Key=key, Value=value, Op=op, ClientId=self.clientId, SeqNum=self.seqNum + 1)
        check_put_append_args(args)  # Go's compiler checks the types; we must, before sending
        self.seqNum += 1
        while True:
            reply = PutAppendReply()
            if self._call("KVServer.PutAppend", args, reply):
                return

    def _call(self, svcMeth, args, reply):
        """Try the remembered leader once; on failure move to the next server.
        True when a server gave a definite answer."""
        ok = self.servers[self.leader].Call(svcMeth, args, reply)
        if ok and reply.Err in (OK, ErrNoKey):
            self.failures = 0
            return True
        if ok and reply.Err == ErrBadArgs:
            # The server checks what we checked: retrying could never succeed.
            raise TypeError(f"{svcMeth}: server {self.leader} refused the request's argument types")
        DPrintf("CLNT", self.leader, "C%x %s #%d: %s", self.clientId & 0xFFFF, svcMeth, args.SeqNum,
                reply.Err if ok else "no reply")
        self.leader = (self.leader + 1) % len(self.servers)
        self.failures += 1
        if self.failures % len(self.servers) == 0:
            time.sleep(RETRY_ROUND_PAUSE)
        return False

    def Put(self, key, value):
        self.PutAppend(key, value, "Put")

    def Append(self, key, value):
        self.PutAppend(key, value, "Append")


def MakeClerk(servers):
    return Clerk(servers)
