"""What the sharded key/value clerks and servers share: error values and RPC types.

A group of servers, each group a Raft replicated state machine, serves the
shards the shard controller assigns to it; assignments change over time and
shards move between groups.
"""

import dataclasses

import labgob
from raft.util import check_get, check_int, check_put_append, check_type, describe
from shardctrler.common import check_shard

OK = "OK"
ErrNoKey = "ErrNoKey"
ErrWrongGroup = "ErrWrongGroup"
ErrWrongLeader = "ErrWrongLeader"
# The server led but its entry was not applied in time: the clerk tries another server.
ErrTimeout = "ErrTimeout"
# A group asked for shards of a configuration the answering group has not reached yet.
ErrNotReady = "ErrNotReady"
# The server refused a request whose fields have the wrong types: only a hand-made
# client sends one, since our clerks check first; a clerk that gets it raises.
ErrBadArgs = "ErrBadArgs"


def register(cls):
    """Register a type with labgob under a package-qualified name, as gob does, so
    that it cannot clash with kvraft's or shardctrler's types of the same name."""
    return labgob.RegisterName("shardkv." + cls.__name__, cls)


# Put or Append
@register
@dataclasses.dataclass
class PutAppendArgs:
    Key: str = ""
    Value: str = ""
    Op: str = ""  # "Put" or "Append"
    # A clerk numbers its requests; each shard keeps the last number applied per
    # clerk and hands that table on with the shard, so a retry is applied at most once.
    ClientId: int = 0
    SeqNum: int = 0


@register
@dataclasses.dataclass
class PutAppendReply:
    Err: str = ""


@register
@dataclasses.dataclass
class GetArgs:
    Key: str = ""
    ClientId: int = 0
    SeqNum: int = 0


@register
@dataclasses.dataclass
class GetReply:
    Err: str = ""
    Value: str = ""


# Between groups: the new owner of some shards pulls them from the old owner,
# then tells it to delete them.


@register
@dataclasses.dataclass
class PullShardsArgs:
    ConfigNum: int = 0  # the configuration in which the caller gained the shards
    Shards: list = dataclasses.field(default_factory=list)


@register
@dataclasses.dataclass
class PullShardsReply:
    Err: str = ""
    ConfigNum: int = 0
    Data: dict = dataclasses.field(default_factory=dict)  # shard -> {key: value}
    LastSeq: dict = dataclasses.field(default_factory=dict)  # shard -> {client id: SeqNum}


@register
@dataclasses.dataclass
class DeleteShardsArgs:
    ConfigNum: int = 0
    Shards: list = dataclasses.field(default_factory=list)


@register
@dataclasses.dataclass
class DeleteShardsReply:
    Err: str = ""


# The clerk calls the first two before sending, the server all four before Start:
# see raft.util.


def check_get_args(args):
    """Raise TypeError unless args is a GetArgs whose fields have their Go types."""
    check_get(args, GetArgs)


def check_put_append_args(args):
    """Raise TypeError unless args is a PutAppendArgs whose fields have their Go
    types, and ValueError unless its Op is "Put" or "Append"."""
    check_put_append(args, PutAppendArgs)


def _check_shards_args(method, args, cls):
    check_type(method, args, cls)
    check_int(f"{method}: ConfigNum", args.ConfigNum)
    if not isinstance(args.Shards, list):
        raise TypeError(f"{method}: shards must be a list of int, not {describe(args.Shards)}")
    for s in args.Shards:
        check_shard(method, s)


def check_pull_shards_args(args):
    _check_shards_args("PullShards", args, PullShardsArgs)


def check_delete_shards_args(args):
    _check_shards_args("DeleteShards", args, DeleteShardsArgs)
