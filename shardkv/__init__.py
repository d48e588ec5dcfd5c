"""Lab 4B: the sharded key/value service (twin of src/shardkv)."""

from .client import Clerk, MakeClerk, key2shard, nrand  # noqa: F401
from .common import (  # noqa: F401
    OK,
    ErrNoKey,
    ErrNotReady,
    ErrTimeout,
    ErrWrongGroup,
    ErrWrongLeader,
    GetArgs,
    GetReply,
    PutAppendArgs,
    PutAppendReply,
)
from .server import Op, ShardKV, StartServer  # noqa: F401
