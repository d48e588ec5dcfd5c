"""What the shard controller's clerks and servers share: the Config type, error
values and the RPC argument/reply types.

The controller assigns shards to replica groups:

    Join(servers)     add groups (a dict gid -> list of server names)
    Leave(gids)       remove groups
    Move(shard, gid)  give one shard to a group
    Query(num)        Config number num, or the latest one if num is -1 (or too big)

Configs are numbered from 0.  Config 0 is the initial one: no groups, and every
shard on gid 0, which stands for no group at all.

You will need to add fields to the RPC argument classes.
"""

import dataclasses

import labgob

# The number of shards.
NShards = 10

OK = "OK"


def _register(cls):
    # Registered under a package-qualified name, as Go's gob names types, so
    # that kvraft's and shardkv's types of the same name do not collide.
    return labgob.RegisterName(f"shardctrler.{cls.__name__}", cls)


@_register
@dataclasses.dataclass
class Config:
    """An assignment of shards to groups.  Please leave this class as it is: the
    tests and shardkv rely on it.  The default value is config 0's shape: number
    0, every shard on gid 0, no groups."""

    Num: int = 0  # config number
    Shards: list = dataclasses.field(default_factory=lambda: [0] * NShards)  # shard -> gid
    Groups: dict = dataclasses.field(default_factory=dict)  # gid -> list of server names


# Every field needs a default value: labrpc builds empty replies by calling the class.


@_register
@dataclasses.dataclass
class JoinArgs:
    Servers: dict = dataclasses.field(default_factory=dict)  # new gid -> server names


@_register
@dataclasses.dataclass
class JoinReply:
    WrongLeader: bool = False
    Err: str = ""


@_register
@dataclasses.dataclass
class LeaveArgs:
    GIDs: list = dataclasses.field(default_factory=list)


@_register
@dataclasses.dataclass
class LeaveReply:
    WrongLeader: bool = False
    Err: str = ""


@_register
@dataclasses.dataclass
class MoveArgs:
    Shard: int = 0
    GID: int = 0


@_register
@dataclasses.dataclass
class MoveReply:
    WrongLeader: bool = False
    Err: str = ""


@_register
@dataclasses.dataclass
class QueryArgs:
    Num: int = 0  # desired config number


@_register
@dataclasses.dataclass
class QueryReply:
    WrongLeader: bool = False
    Err: str = ""
    Config: Config = dataclasses.field(default_factory=Config)
