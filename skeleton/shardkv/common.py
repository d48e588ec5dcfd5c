"""What the sharded key/value clerks and servers share.

The service is made of many replica groups, each running Raft.  The shard
controller decides which group serves each shard, and may change that
assignment from time to time.

You will have to modify these definitions.
"""

import dataclasses

import labgob

OK = "OK"
ErrNoKey = "ErrNoKey"
ErrWrongGroup = "ErrWrongGroup"
ErrWrongLeader = "ErrWrongLeader"


def register(cls):
    """Register a type with labgob under a package-qualified name (as Go's gob
    does), so that it cannot clash with kvraft's types of the same name."""
    return labgob.RegisterName("shardkv." + cls.__name__, cls)


# Put or Append
@register
@dataclasses.dataclass
class PutAppendArgs:
    Key: str = ""
    Value: str = ""
    Op: str = ""  # "Put" or "Append"
    # Add your fields here.  Give each a default value; a field name must start
    # with a capital letter, as Go requires for RPC.


@register
@dataclasses.dataclass
class PutAppendReply:
    Err: str = ""


@register
@dataclasses.dataclass
class GetArgs:
    Key: str = ""
    # Add your fields here.


@register
@dataclasses.dataclass
class GetReply:
    Err: str = ""
    Value: str = ""
