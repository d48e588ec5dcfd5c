"""Timeline pages of lab test runs: one lane per server over time, with roles and
terms, crashes, partitions, the tester's calls and checks, applied indexes and
RPC arrows, written as one self-contained HTML file for a failed test.

    recorder: the hooks labrpc and the test harnesses call (cheap when off,
              bounded when on)
    render:   the events of one test -> the HTML page
    pytest_plugin: records every test, writes the page of a failed one
              (--timeline always writes one for every test; --timeline off records nothing)

The hooks are imported from here: `timeline.rpc_sent(...)`, `@timeline.traced`.
"""

from .recorder import (
    applied,
    connect,
    dprintf,
    failure,
    lock_held,
    net,
    owner,
    rpc_delivered,
    rpc_replied,
    rpc_sent,
    start,
    state,
    traced,
)

__all__ = [
    "applied",
    "connect",
    "dprintf",
    "failure",
    "lock_held",
    "net",
    "owner",
    "rpc_delivered",
    "rpc_replied",
    "rpc_sent",
    "start",
    "state",
    "traced",
]
