from .client import Clerk, MakeClerk, nrand  # noqa: F401
from .common import (  # noqa: F401
    OK,
    ErrNoKey,
    ErrTimeout,
    ErrWrongLeader,
    GetArgs,
    GetReply,
    PutAppendArgs,
    PutAppendReply,
)
from .server import KVServer, Op, StartKVServer  # noqa: F401
