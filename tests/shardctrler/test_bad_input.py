"""Ill-typed input to the shard controller (issue #19): the clerk and the servers
refuse it before it reaches the log, an applier that fails names its entry, and
a clerk needs servers.  Not a Go twin: Go's compiler rules most of this out.
"""

import re

import pytest

from shardctrler import MakeClerk
from shardctrler.common import ErrBadArgs, JoinArgs, JoinReply, LeaveArgs, LeaveReply, MoveArgs, MoveReply, QueryArgs, QueryReply
from shardctrler.server import Op
from tests import bad_input

from .config import make_config


def check_serves(ck):
    """Join, Move, Leave and Query work."""
    ck.Join({1: ["a", "b"], 2: ["c"]})
    c = ck.Query(-1)
    assert c.Groups == {1: ["a", "b"], 2: ["c"]}, c
    ck.Move(0, 2)
    assert ck.Query(-1).Shards[0] == 2
    ck.Leave([2])
    c = ck.Query(-1)
    assert c.Groups == {1: ["a", "b"]} and c.Shards == [1] * len(c.Shards), c
    assert ck.Query(c.Num - 1).Shards[0] == 2


def test_clerk_refuses_ill_typed_arguments_before_sending():
    cfg = make_config(3, False)
    try:
        ends = [bad_input.CountingEnd(end) for end in bad_input.raw_ends(cfg.net, range(cfg.n))]
        ck = MakeClerk(ends)
        cases = [
            (lambda: ck.Query(-2), ValueError, "Query: num -2 is neither -1"),
            (lambda: ck.Join([1]), TypeError, "Join: servers must be a dict gid -> server names, not list ([1])"),
            (lambda: ck.Join({"1": ["a"]}), TypeError, "Join: gid must be int, not str ('1')"),
            (lambda: ck.Join({True: ["a"]}), TypeError, "Join: gid must be int, not bool (True)"),
            (lambda: ck.Join({1: "a"}), TypeError, "Join: the servers of gid 1 must be a list of str, not str ('a')"),
            (lambda: ck.Join({1: ["a", 2]}), TypeError, "Join: the servers of gid 1 must be a list of str"),
            (lambda: ck.Join({0: ["a"]}), ValueError, "Join: gid 0 is not a valid group"),
            (lambda: ck.Leave(1), TypeError, "Leave: gids must be a list of int, not int (1)"),
            (lambda: ck.Leave([None]), TypeError, "Leave: gid must be int, not NoneType (None)"),
            (lambda: ck.Leave([-1]), ValueError, "Leave: gid -1 is not a valid group"),
            (lambda: ck.Move("0", 1), TypeError, "Move: shard must be int, not str ('0')"),
            (lambda: ck.Move(True, 1), TypeError, "Move: shard must be int, not bool (True)"),
            (lambda: ck.Move(10, 1), ValueError, "Move: shard 10 is not in [0, 10)"),
            (lambda: ck.Move(0, 1.0), TypeError, "Move: gid must be int, not float (1.0)"),
            (lambda: ck.Query("1"), TypeError, "Query: num must be int, not str ('1')"),
            (lambda: ck.Query(None), TypeError, "Query: num must be int, not NoneType (None)"),
        ]
        bad_input.check_clerk_refuses(cases, ends, lambda: check_serves(ck))
    finally:
        cfg.cleanup()


def test_servers_refuse_hand_made_ill_typed_requests():
    cfg = make_config(3, False)
    try:
        ids = {"ClientId": 7, "SeqNum": 1}
        bad = [
            ("ShardCtrler.Join", JoinArgs(Servers=[1], **ids), JoinReply),
            ("ShardCtrler.Join", JoinArgs(Servers={"1": ["a"]}, **ids), JoinReply),
            ("ShardCtrler.Join", JoinArgs(Servers={1: "a"}, **ids), JoinReply),
            ("ShardCtrler.Join", JoinArgs(Servers={1: ["a"]}, ClientId="me", SeqNum=1), JoinReply),
            ("ShardCtrler.Join", QueryArgs(Num=1, **ids), JoinReply),
            ("ShardCtrler.Leave", LeaveArgs(GIDs="1", **ids), LeaveReply),
            ("ShardCtrler.Leave", LeaveArgs(GIDs=[0], **ids), LeaveReply),
            ("ShardCtrler.Move", MoveArgs(Shard=10, GID=1, **ids), MoveReply),
            ("ShardCtrler.Move", MoveArgs(Shard=None, GID=1, **ids), MoveReply),
            ("ShardCtrler.Move", MoveArgs(Shard=0, GID=True, **ids), MoveReply),
            ("ShardCtrler.Query", QueryArgs(Num="1", **ids), QueryReply),
            ("ShardCtrler.Query", QueryArgs(Num=-2, **ids), QueryReply),
            ("ShardCtrler.Query", QueryArgs(Num=-1, ClientId=7, SeqNum=None), QueryReply),
            ("ShardCtrler.Query", 5, QueryReply),
        ]
        ck = cfg.makeClient(cfg.All())
        ck.Query(-1)  # a leader, at last
        _, leader = cfg.Leader()
        ends = bad_input.raw_ends(cfg.net, range(cfg.n))
        bad_input.check_servers_refuse(ends, leader, bad, lambda reply: reply.Err == ErrBadArgs and reply.WrongLeader)

        with pytest.raises(TypeError, match=re.escape("Join: gid must be int, not str ('1')")):
            ck.Join({"1": ["a"]})
        # Well typed, but no group 3 to move the shard to: the server refuses it
        # when applying it, and the clerk raises rather than retry for ever.
        with pytest.raises(ValueError, match=re.escape("Move: gid 3 is not a group of the latest config")):
            ck.Move(0, 3)
        check_serves(ck)
    finally:
        cfg.cleanup()


def test_an_applier_that_fails_names_its_entry(monkeypatch):
    cfg = make_config(3, False)
    failures = bad_input.ApplierFailures(monkeypatch, "ctrler")
    try:
        ck = cfg.makeClient(cfg.All())
        ck.Query(-1)  # a leader, at last
        index = bad_input.start_past_the_checks(cfg.Leader, cfg.servers, Op("Rename", ClientId=7, SeqNum=1))
        failures.check(cfg.n, index, ValueError, "Op(Kind='Rename'")
    finally:
        cfg.cleanup()


def test_make_clerk_without_servers():
    with pytest.raises(ValueError, match="no servers"):
        MakeClerk([])
