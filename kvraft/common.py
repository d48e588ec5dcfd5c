"""What clerks and servers share: error values and the RPC argument/reply types."""

import dataclasses

import labgob

OK = "OK"
ErrNoKey = "ErrNoKey"
ErrWrongLeader = "ErrWrongLeader"
# The server was leader but saw no commit in time (e.g. it sits in a minority
# partition without knowing it yet): the clerk should try another server.
ErrTimeout = "ErrTimeout"


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
