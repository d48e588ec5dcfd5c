"""The election bug the timeline tests plant: a candidate never hears its votes.

Loaded into a pytest subprocess with `-p tests.timeline.plants`.  Every peer's
ends deliver its RequestVote calls but throw the replies away, so no candidate
ever wins; the network still carries the calls (the page shows candidates in
rising terms, and no leader).  Only the RPC's name is used, so the plant works
on any Raft, a student's too.
"""


class _DeafEnd:
    """A ClientEnd whose RequestVote replies never reach the caller."""

    def __init__(self, end):
        self.end = end
        self.endname = end.endname

    def Call(self, svcMeth, args, reply):
        if svcMeth.endswith(".RequestVote"):
            self.end.Call(svcMeth, args, type(reply)())
            return False
        return self.end.Call(svcMeth, args, reply)


def pytest_configure():
    import tests.raft.config as config  # only now: under --sim, after the clock and locks are replaced

    make = config.Make

    def planted(peers, me, persister, applyCh):
        return make([_DeafEnd(e) for e in peers], me, persister, applyCh)

    config.Make = planted
