"""What clerks and servers share: error values and the RPC argument/reply types."""

import dataclasses

import labgob

OK = "OK"
ErrNoKey = "ErrNoKey"
ErrWrongLeader = "ErrWrongLeader"


# Put or Append
@labgob.Register
@dataclasses.dataclass
class PutAppendArgs:
    Key: str = ""
    Value: str = ""
    Op: str = ""  # "Put" or "Append"
    # You'll have to add definitions here.
    # Give every field a default value.


@labgob.Register
@dataclasses.dataclass
class PutAppendReply:
    Err: str = ""


@labgob.Register
@dataclasses.dataclass
class GetArgs:
    Key: str = ""
    # You'll have to add definitions here.


@labgob.Register
@dataclasses.dataclass
class GetReply:
    Err: str = ""
    Value: str = ""
