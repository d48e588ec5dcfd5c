"""Lab 4B: the sharded key/value service."""

from .client import Clerk, MakeClerk, key2shard, nrand  # noqa: F401
from .common import (  # noqa: F401
    OK,
    ErrNoKey,
    ErrWrongGroup,
    ErrWrongLeader,
    GetArgs,
    GetReply,
    PutAppendArgs,
    PutAppendReply,
)
from .server import Op, ShardKV, StartServer  # noqa: F401
