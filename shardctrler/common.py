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
from raft.util import check_ids, check_int, check_type, describe

# The number of shards.
NShards = 10

OK = "OK"
# The server is not the leader, or lost leadership before the request was applied.
ErrWrongLeader = "ErrWrongLeader"
# The server led but saw no commit in time (a leader cut off in a minority, say).
ErrTimeout = "ErrTimeout"
# A Move to a gid that is not a group of the config it would change.
ErrNoGroup = "ErrNoGroup"
# The server refused a request whose fields have the wrong types: only a hand-made
# client sends one, since our clerks check first; a clerk that gets it raises.
ErrBadArgs = "ErrBadArgs"


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


# The clerk calls these before sending, the server before Start: see raft.util.


def check_gid(method, gid):
    check_int(f"{method}: gid", gid)
    if gid <= 0:
        raise ValueError(f"{method}: gid {gid} is not a valid group (gid 0 means no group)")


def check_shard(method, shard):
    """Also shardkv's check of the shards one group asks another for."""
    check_int(f"{method}: shard", shard)
    if not 0 <= shard < NShards:
        raise ValueError(f"{method}: shard {shard} is not in [0, {NShards})")


def _check_args(method, args, cls):
    check_type(method, args, cls)
    check_ids(method, args)


def check_join_args(args):
    _check_args("Join", args, JoinArgs)
    if not isinstance(args.Servers, dict):
        raise TypeError(f"Join: servers must be a dict gid -> server names, not {describe(args.Servers)}")
    for gid, names in args.Servers.items():
        check_gid("Join", gid)
        if not isinstance(names, list) or not all(isinstance(s, str) for s in names):
            raise TypeError(f"Join: the servers of gid {gid} must be a list of str, not {describe(names)}")


def check_leave_args(args):
    _check_args("Leave", args, LeaveArgs)
    if not isinstance(args.GIDs, list):
        raise TypeError(f"Leave: gids must be a list of int, not {describe(args.GIDs)}")
    for gid in args.GIDs:
        check_gid("Leave", gid)


def check_move_args(args):
    _check_args("Move", args, MoveArgs)
    check_shard("Move", args.Shard)
    check_gid("Move", args.GID)


def check_query_args(args):
    _check_args("Query", args, QueryArgs)
    check_int("Query: num", args.Num)
    if args.Num < -1:
        raise ValueError(f"Query: num {args.Num} is neither -1 (the latest) nor a config number")
