from .client import Clerk, MakeClerk, nrand  # noqa: F401
from .common import (  # noqa: F401
    OK,
    Config,
    ErrTimeout,
    ErrWrongLeader,
    JoinArgs,
    JoinReply,
    LeaveArgs,
    LeaveReply,
    MoveArgs,
    MoveReply,
    NShards,
    QueryArgs,
    QueryReply,
)
from .server import Op, ShardCtrler, StartServer  # noqa: F401
