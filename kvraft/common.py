"""What clerks and servers share: error values, the RPC argument/reply types,
and the check of their fields' types."""

import dataclasses

import labgob
from raft.util import check_get, check_put_append

OK = "OK"
ErrNoKey = "ErrNoKey"
ErrWrongLeader = "ErrWrongLeader"
# The server was leader but saw no commit in time (e.g. it sits in a minority
# partition without knowing it yet): the clerk should try another server.
ErrTimeout = "ErrTimeout"
# The server refused a request whose fields have the wrong types: only a hand-made
# client sends one, since our clerks check first; a clerk that gets it raises.
ErrBadArgs = "ErrBadArgs"


# Put or Append
@labgob.Register
@dataclasses.dataclass
class PutAppendArgs:
    Key: str = ""
    Value: str = ""
    Op: str = ""  # "Put" or "Append"
    # A clerk numbers its requests so that a server applies each one at most once.
    ClientId: int = 0
    SeqNum: int = 0


@labgob.Register
@dataclasses.dataclass
class PutAppendReply:
    Err: str = ""


@labgob.Register
@dataclasses.dataclass
class GetArgs:
    Key: str = ""
    ClientId: int = 0
    SeqNum: int = 0


@labgob.Register
@dataclasses.dataclass
class GetReply:
    Err: str = ""
    Value: str = ""


# The clerk calls these before sending, the server before Start: see raft.util.


def check_get_args(args):
    """Raise TypeError unless args is a GetArgs whose fields have their Go types."""
    check_get(args, GetArgs)


def check_put_append_args(args):
    """Raise TypeError unless args is a PutAppendArgs whose fields have their Go
    types, and ValueError unless its Op is "Put" or "Append"."""
    check_put_append(args, PutAppendArgs)
