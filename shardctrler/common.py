"""What the shard controller's clerks and servers share: the Config type, error
values and the RPC argument/reply types.

The controller assigns shards to replica groups:

    Join(servers)     add groups (a dict gid -> list of server names)
    Leave(gids)       remove groups
    Move(shard, gid)  give one shard to a group
    Query(num)        Config number num, or the latest one if num is -1 (or too big)

Configs are numbered from 0.  Config 0 is the initial one: no groups, and every
shard on gid 0, which stands for no group at all.
"""

import dataclasses

import labgob

# The number of shards.
NShards = 10

OK = "OK"
# The server is not the leader, or lost leadership before the request was applied.
ErrWrongLeader = "ErrWrongLeader"
# The server led but saw no commit in time (a leader cut off in a minority, say).
ErrTimeout = "ErrTimeout"


def _register(cls):
    # Registered under a package-qualified name, as Go's gob names types, so
    # that kvraft's and shardkv's types of the same name do not collide.
    return labgob.RegisterName(f"shardctrler.{cls.__name__}", cls)


@_register
@dataclasses.dataclass
class Config:
    """An assignment of shards to groups.  The default value is Go's zero Config:
    number 0, every shard on gid 0, no groups."""

    Num: int = 0  # config number
    Shards: list = dataclasses.field(default_factory=lambda: [0] * NShards)  # shard -> gid
    Groups: dict = dataclasses.field(default_factory=dict)  # gid -> list of server names

    def __post_init__(self):
        # Go's [NShards]int cannot have another length; a list can, so refuse it here.
        if not isinstance(self.Shards, list) or len(self.Shards) != NShards:
            raise ValueError(f"Config.Shards must be a list of {NShards} gids, not {self.Shards!r}")
        if not isinstance(self.Groups, dict):
            raise ValueError(f"Config.Groups must be a dict gid -> server names, not {self.Groups!r}")

    def copy(self):
        """A deep copy: a Config handed out must not share lists with the one kept."""
        return Config(self.Num, list(self.Shards), {gid: list(names) for gid, names in self.Groups.items()})


# Every request carries its clerk's id and a number that grows with each request
# of that clerk, so that a server applies a retried request at most once.


@_register
@dataclasses.dataclass
class JoinArgs:
    Servers: dict = dataclasses.field(default_factory=dict)  # new gid -> server names
    ClientId: int = 0
    SeqNum: int = 0


@_register
@dataclasses.dataclass
class JoinReply:
    WrongLeader: bool = False
    Err: str = ""


@_register
@dataclasses.dataclass
class LeaveArgs:
    GIDs: list = dataclasses.field(default_factory=list)
    ClientId: int = 0
    SeqNum: int = 0


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
    ClientId: int = 0
    SeqNum: int = 0


@_register
@dataclasses.dataclass
class MoveReply:
    WrongLeader: bool = False
    Err: str = ""


@_register
@dataclasses.dataclass
class QueryArgs:
    Num: int = 0  # desired config number
    ClientId: int = 0
    SeqNum: int = 0


@_register
@dataclasses.dataclass
class QueryReply:
    WrongLeader: bool = False
    Err: str = ""
    Config: Config = dataclasses.field(default_factory=Config)
