from .raft import (  # noqa: F401
    ApplyMsg,
    # BEGIN SOLUTION
    AppendEntriesArgs,
    AppendEntriesReply,
    InstallSnapshotArgs,
    InstallSnapshotReply,
    # END SOLUTION
    Make,
    Raft,
    RequestVoteArgs,
    RequestVoteReply,
)
from .util import Chan, DPrintf, Debug  # noqa: F401
