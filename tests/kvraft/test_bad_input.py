"""Ill-typed input to the key/value service (issue #19): the clerk and the servers
refuse it before it reaches the log, an applier that fails names its entry, a
clerk needs servers, and a server refuses a corrupted snapshot.  Not a Go twin: Go's compiler rules all of this out.
"""

import pytest

import labgob
from kvraft import MakeClerk, StartKVServer
from kvraft.common import ErrBadArgs, GetArgs, GetReply, PutAppendArgs, PutAppendReply
from kvraft.server import Op
from persister import MakePersister
from tests import bad_input

from .config import make_config


def test_clerk_refuses_ill_typed_arguments_before_sending():
    cfg = make_config(3, False, -1)
    try:
        ends = [bad_input.CountingEnd(end) for end in bad_input.raw_ends(cfg.net, range(cfg.n))]
        bad_input.check_kv_clerk_refuses(MakeClerk(ends), ends)
    finally:
        cfg.cleanup()


def test_servers_refuse_hand_made_ill_typed_requests():
    cfg = make_config(3, False, -1)
    try:
        bad = [
            ("KVServer.PutAppend", PutAppendArgs(Key=123, Value="v", Op="Put", ClientId=7, SeqNum=1), PutAppendReply),
            ("KVServer.PutAppend", PutAppendArgs(Key=None, Value="v", Op="Put", ClientId=7, SeqNum=2), PutAppendReply),
            ("KVServer.PutAppend", PutAppendArgs(Key="k", Value=5, Op="Append", ClientId=7, SeqNum=3), PutAppendReply),
            ("KVServer.PutAppend", PutAppendArgs(Key="k", Value="v", Op="Delete", ClientId=7, SeqNum=4), PutAppendReply),
            ("KVServer.PutAppend", PutAppendArgs(Key="k", Value="v", Op="Put", ClientId="me", SeqNum=5), PutAppendReply),
            ("KVServer.PutAppend", PutAppendArgs(Key="k", Value="v", Op="Put", ClientId=7, SeqNum=True), PutAppendReply),
            ("KVServer.PutAppend", GetArgs(Key="k", ClientId=7, SeqNum=6), PutAppendReply),
            ("KVServer.Get", GetArgs(Key=123, ClientId=7, SeqNum=7), GetReply),
            ("KVServer.Get", GetArgs(Key="k", ClientId=7, SeqNum=8.5), GetReply),
            ("KVServer.Get", 5, GetReply),
        ]
        ck = cfg.makeClient(cfg.All())
        ck.Put("a", "b")  # a leader, at last
        _, leader = cfg.Leader()
        bad_input.check_kv_servers_refuse(ck, bad_input.raw_ends(cfg.net, range(cfg.n)), leader, bad, ErrBadArgs)
    finally:
        cfg.cleanup()


def test_an_applier_that_fails_names_its_entry(monkeypatch):
    cfg = make_config(3, False, -1)
    failures = bad_input.ApplierFailures(monkeypatch, "kv")
    try:
        ck = cfg.makeClient(cfg.All())
        ck.Put("a", "b")  # a leader, at last
        index = bad_input.start_past_the_checks(cfg.Leader, cfg.kvservers, Op("Put", 123, "v", 7, 1))
        failures.check(cfg.n, index, TypeError, "Op(Kind='Put', Key=123, Value='v'")
    finally:
        cfg.cleanup()


def test_make_clerk_without_servers():
    with pytest.raises(ValueError, match="no servers"):
        MakeClerk([])


def test_a_corrupted_snapshot_is_refused_not_taken_for_a_fresh_start():
    for snapshot, why in (
        (b"\xc1", "labgob"),  # not msgpack at all
        (labgob.encode(7), "no more values"),  # truncated
        (labgob.encode(7) + labgob.encode(["data"]), "unexpected field types"),
        (labgob.encode("7") + labgob.encode([{}, {}]), "applied index '7'"),
    ):
        persister = MakePersister()
        persister.Save(b"", snapshot)
        with pytest.raises(ValueError, match=f"kvserver 0: corrupted snapshot: .*{why}"):
            StartKVServer([], 0, persister, 1000)
