"""What clerks and servers share: error values and the RPC argument/reply types."""

import dataclasses

import labgob

OK = "OK"
ErrNoKey = "ErrNoKey"
ErrWrongLeader = "ErrWrongLeader"
# BEGIN SOLUTION
# The server was leader but saw no commit in time (e.g. it sits in a minority
# partition without knowing it yet): the clerk should try another server.
ErrTimeout = "ErrTimeout"
# END SOLUTION


# Put or Append
@labgob.Register
@dataclasses.dataclass
class PutAppendArgs:
    Key: str = ""
    Value: str = ""
    Op: str = ""  # "Put" or "Append"
    #> # You'll have to add definitions here.
    #> # Give every field a default value.
    # BEGIN SOLUTION
    # A clerk numbers its requests so that a server applies each one at most once.
    ClientId: int = 0
    SeqNum: int = 0
    # END SOLUTION


@labgob.Register
@dataclasses.dataclass
class PutAppendReply:
    Err: str = ""


@labgob.Register
@dataclasses.dataclass
class GetArgs:
    Key: str = ""
    #> # You'll have to add definitions here.
    # BEGIN SOLUTION
    ClientId: int = 0
    SeqNum: int = 0
    # END SOLUTION


@labgob.Register
@dataclasses.dataclass
class GetReply:
    Err: str = ""
    Value: str = ""
