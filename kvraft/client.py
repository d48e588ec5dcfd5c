"""The clerk: the client side of the key/value service."""

# BEGIN SOLUTION
import random
# END SOLUTION
import secrets
# BEGIN SOLUTION
import time
# END SOLUTION

from raft.util import DPrintf, Debug

from .common import OK, ErrNoKey, GetArgs, GetReply, PutAppendArgs, PutAppendReply

# BEGIN SOLUTION
# After every server has failed once in a row, pause before the next round so that
# clerks waiting out an election do not spin on the CPU the servers need.
RETRY_ROUND_PAUSE = 0.020
# END SOLUTION


def nrand():
    """A random 62-bit client id."""
    return secrets.randbits(62)


class Clerk:
    def __init__(self, servers):
        self.servers = servers
        #> # You will have to modify this class.
        # BEGIN SOLUTION
        self.clientId = nrand()
        self.seqNum = 0
        self.leader = random.randrange(len(servers))  # the server that answered last
        self.failures = 0  # failed attempts in a row
        # END SOLUTION

    def Get(self, key):
        """Fetch the current value for a key; "" if the key does not exist.
        Keeps trying forever in the face of all other errors."""
        #> # You can send an RPC with code like this:
        #> # ok = self.servers[i].Call("KVServer.Get", args, reply)
        #> # where args is a GetArgs and reply a new GetReply(), which the call
        #> # fills in when it succeeds.
        #>
        #> # You will have to modify this function.
        #> return ""
        # BEGIN SOLUTION
        self.seqNum += 1
        args = GetArgs(Key=key, ClientId=self.clientId, SeqNum=self.seqNum)
        while True:
            reply = GetReply()
            if self._call("KVServer.Get", args, reply):
                return reply.Value if reply.Err == OK else ""
        # END SOLUTION

    def PutAppend(self, key, value, op):
        """Shared by Put and Append; op is "Put" or "Append"."""
        #> # You can send an RPC with code like this:
        #> # ok = self.servers[i].Call("KVServer.PutAppend", args, reply)
        #> # where args is a PutAppendArgs and reply a new PutAppendReply(), which
        #> # the call fills in when it succeeds.
        #>
        #> # You will have to modify this function.
        #> pass
        # BEGIN SOLUTION
        self.seqNum += 1
        args = PutAppendArgs(Key=key, Value=value, Op=op, ClientId=self.clientId, SeqNum=self.seqNum)
        while True:
            reply = PutAppendReply()
            if self._call("KVServer.PutAppend", args, reply):
                return
        # END SOLUTION

    # BEGIN SOLUTION
    def _call(self, svcMeth, args, reply):
        """Try the remembered leader once; on failure move to the next server.
        True when a server gave a definite answer."""
        ok = self.servers[self.leader].Call(svcMeth, args, reply)
        if ok and reply.Err in (OK, ErrNoKey):
            self.failures = 0
            return True
        if Debug:
            DPrintf("CLNT", self.leader, "C%x %s #%d: %s", self.clientId & 0xFFFF, svcMeth, args.SeqNum,
                    reply.Err if ok else "no reply")
        self.leader = (self.leader + 1) % len(self.servers)
        self.failures += 1
        if self.failures % len(self.servers) == 0:
            time.sleep(RETRY_ROUND_PAUSE)
        return False

    # END SOLUTION
    def Put(self, key, value):
        self.PutAppend(key, value, "Put")

    def Append(self, key, value):
        self.PutAppend(key, value, "Append")


def MakeClerk(servers):
    return Clerk(servers)
