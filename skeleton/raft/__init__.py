from .raft import (  # noqa: F401
    ApplyMsg,
    Make,
    Raft,
    RequestVoteArgs,
    RequestVoteReply,
)
from .util import Chan, DPrintf, Debug  # noqa: F401
