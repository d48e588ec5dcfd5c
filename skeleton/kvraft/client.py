"""The clerk: the client side of the key/value service."""

import secrets

from .common import GetArgs, GetReply, PutAppendArgs, PutAppendReply  # noqa: F401


def nrand():
    """A random 62-bit client id."""
    return secrets.randbits(62)


class Clerk:
    def __init__(self, servers):
        self.servers = servers
        # You will have to modify this class.

    def Get(self, key):
        """Fetch the current value for a key; "" if the key does not exist.
        Keeps trying forever in the face of all other errors."""
        # You can send an RPC with code like this:
        # ok = self.servers[i].Call("KVServer.Get", args, reply)
        # where args is a GetArgs and reply a new GetReply(), which the call
        # fills in when it succeeds.

        # You will have to modify this function.
        return ""

    def PutAppend(self, key, value, op):
        """Shared by Put and Append; op is "Put" or "Append"."""
        # You can send an RPC with code like this:
        # ok = self.servers[i].Call("KVServer.PutAppend", args, reply)
        # where args is a PutAppendArgs and reply a new PutAppendReply(), which
        # the call fills in when it succeeds.

        # You will have to modify this function.
        pass

    def Put(self, key, value):
        self.PutAppend(key, value, "Put")

    def Append(self, key, value):
        self.PutAppend(key, value, "Append")


def MakeClerk(servers):
    ck = Clerk(servers)
    # You'll have to add code here.
    return ck
