"""Ill-typed input to the sharded key/value service (issue #19): the clerk and the
servers refuse it before it reaches the log, an applier that fails names its
entry, and a clerk needs controllers.  Also: a group that gives shards away
drops them from its persisted snapshot at once.  Not a Go twin.
"""

import time

import pytest

from shardkv import MakeClerk, key2shard
from shardkv.common import (
    ErrBadArgs,
    DeleteShardsArgs,
    DeleteShardsReply,
    GetArgs,
    GetReply,
    PullShardsArgs,
    PullShardsReply,
    PutAppendArgs,
    PutAppendReply,
)
from shardkv.server import Op
from tests import bad_input

from .config import make_config, randstring

# How long a group gets to hand shards over (real seconds, or virtual ones under
# --sim): it takes well under a second when nothing else runs.
HANDOVER_WAIT = 30.0


def counted_clerk(cfg):
    """A clerk whose every end, to the controllers and to the groups, counts its calls."""
    ends = []

    def make_end(servername):
        ends.append(bad_input.CountingEnd(bad_input.raw_end(cfg.net, servername)))
        return ends[-1]

    ck = MakeClerk([make_end(cfg.ctrlername(i)) for i in range(cfg.nctrlers)], make_end)
    return ck, ends


def group_leader(cfg, gi):
    """(True, i) if server i of group gi believes it leads, else (False, 0): a config's
    Leader, for one group."""
    for i, kv in enumerate(cfg.groups[gi].servers):
        if kv is not None and kv.rf.GetState()[1]:
            return True, i
    return False, 0


def test_clerk_refuses_ill_typed_arguments_before_sending():
    cfg = make_config(3, False, -1)
    try:
        cfg.join(0)
        ck, ends = counted_clerk(cfg)
        bad_input.check_kv_clerk_refuses(ck, ends)
    finally:
        cfg.cleanup()


def test_servers_refuse_hand_made_ill_typed_requests():
    cfg = make_config(3, False, -1)
    try:
        cfg.join(0)
        ck = cfg.makeClient()
        ck.Put("a", "b")  # group 0 has a leader, in config 1
        gid = cfg.groups[0].gid
        ids = {"ClientId": 7, "SeqNum": 1}
        bad = [
            ("ShardKV.PutAppend", PutAppendArgs(Key=123, Value="v", Op="Put", **ids), PutAppendReply),
            ("ShardKV.PutAppend", PutAppendArgs(Key="k", Value=5, Op="Put", **ids), PutAppendReply),
            ("ShardKV.PutAppend", PutAppendArgs(Key="k", Value="v", Op="Delete", **ids), PutAppendReply),
            ("ShardKV.PutAppend", PutAppendArgs(Key="k", Value="v", Op="Append", ClientId="me", SeqNum=1), PutAppendReply),
            ("ShardKV.Get", GetArgs(Key=None, **ids), GetReply),
            ("ShardKV.Get", GetArgs(Key="k", ClientId=7, SeqNum=False), GetReply),
            ("ShardKV.Get", 5, GetReply),
            ("ShardKV.PullShards", PullShardsArgs(ConfigNum="1", Shards=[0]), PullShardsReply),
            ("ShardKV.PullShards", PullShardsArgs(ConfigNum=1, Shards=[10]), PullShardsReply),
            ("ShardKV.DeleteShards", DeleteShardsArgs(ConfigNum=1, Shards=[99]), DeleteShardsReply),
            ("ShardKV.DeleteShards", DeleteShardsArgs(ConfigNum=1, Shards="0"), DeleteShardsReply),
            ("ShardKV.DeleteShards", DeleteShardsArgs(ConfigNum=None, Shards=[0]), DeleteShardsReply),
        ]
        _, leader = group_leader(cfg, 0)
        ends = bad_input.raw_ends(cfg.net, [cfg.servername(gid, i) for i in range(cfg.n)])
        bad_input.check_kv_servers_refuse(ck, ends, leader, bad, ErrBadArgs)
        assert ck.Get("a") == "b"
    finally:
        cfg.cleanup()


def test_an_applier_that_fails_names_its_entry(monkeypatch):
    cfg = make_config(3, False, -1)
    failures = bad_input.ApplierFailures(monkeypatch, "skv")
    try:
        cfg.join(0)
        ck = cfg.makeClient()
        ck.Put("a", "b")  # group 0 has a leader
        index = bad_input.start_past_the_checks(lambda: group_leader(cfg, 0), cfg.groups[0].servers, Op("Put", "k", 5, 7, 1))
        failures.check(cfg.n, index, TypeError, "Op(Kind='Put', Key='k', Value=5")
    finally:
        cfg.cleanup()


def test_make_clerk_without_controllers():
    with pytest.raises(ValueError, match="no shard controllers"):
        MakeClerk([], lambda servername: None)


def test_giving_shards_away_drops_them_from_the_snapshot_at_once():
    """Once a group has handed shards over, what it persists no longer holds them,
    though it gets no more requests that would make it snapshot again."""
    size = 20000  # bytes of each value: every Put makes a snapshot
    cfg = make_config(3, False, size * 4 // 5)
    try:
        ck = cfg.makeClient()
        cfg.join(0)
        keys = [str(d) for d in range(10)]  # one key per shard
        assert sorted(key2shard(k) for k in keys) == list(range(10))
        values = {k: randstring(size) for k in keys}
        for k in keys:
            ck.Put(k, values[k])

        cfg.join(1)
        kept = cfg.mck.Query(-1).Shards.count(cfg.groups[0].gid)
        assert 0 < kept < 10
        # The kept values, with room for everything else (configs, tables, the log).
        limit = (kept + 2) * size
        deadline = time.monotonic() + HANDOVER_WAIT
        while True:
            persisted = [p.RaftStateSize() + p.SnapshotSize() for p in cfg.groups[0].saved]
            if max(persisted) < limit:
                break
            if time.monotonic() > deadline:
                pytest.fail(
                    f"group {cfg.groups[0].gid} still persists {persisted} bytes (Raft state + snapshot) "
                    f"{HANDOVER_WAIT:.0f} s after it kept {kept} of the 10 shards of {size} bytes each"
                )
            time.sleep(0.100)  # the hand-over runs in the groups' own threads

        for k in keys:
            assert ck.Get(k) == values[k], k
    finally:
        cfg.cleanup()
