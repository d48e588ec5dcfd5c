"""Regression tests of Raft edge cases the ported Go tests do not reach
(issue #10 item 5, issue #12), and of the log type.  Not a Go twin."""

import dataclasses
import subprocess
import sys
import threading
import time

import pytest

import labgob
from persister import MakePersister
import raft
from raft import Chan, Make, util
from raft.raft import Log

from .config import make_config


@dataclasses.dataclass
class Unregistered:  # a dataclass labgob was never told about
    x: int = 0


def _persisted(cfg, i):
    return cfg.saved[i].ReadRaftState()


def test_start_with_unencodable_command_raises_and_leaves_the_leader_healthy():
    cfg = make_config(3, False, False)
    try:
        leader = cfg.checkOneLeader()
        rf = cfg.rafts[leader]
        before = _persisted(cfg, leader)
        for bad in ((1, 2), Unregistered(1)):
            with pytest.raises(TypeError, match="Raft.Start: cannot replicate"):
                rf.Start(bad)
        # Nothing was appended, in memory or on disk ...
        assert _persisted(cfg, leader) == before
        assert rf.GetState()[1]
        # ... and the leader's replication still works: the next command takes index 1.
        assert cfg.one(101, 3, False) == 1
        assert cfg.checkOneLeader() == leader
    finally:
        cfg.cleanup()


def test_one_peer_cluster_elects_itself_and_commits():
    cfg = make_config(1, False, False)
    try:
        assert cfg.checkOneLeader() == 0
        assert cfg.one(7, 1, False) == 1
        assert cfg.one(8, 1, False) == 2
    finally:
        cfg.cleanup()


def test_kill_ends_an_applier_blocked_on_a_channel_nobody_reads_or_closes():
    threads0 = set(threading.enumerate())
    ch = Chan()
    # One peer: it never sends an RPC, so it needs no network.
    rf = Make([None], 0, MakePersister(), ch)
    deadline = time.monotonic() + 5
    while not rf.GetState()[1]:
        assert time.monotonic() < deadline, "a one-peer cluster did not elect itself"
        time.sleep(0.01)
    assert rf.Start("x")[2]
    # Wait until the applier offers the committed entry on ch (where it blocks: nobody reads).
    while ch._item is util._EMPTY:
        assert time.monotonic() < deadline, "the entry was never offered on applyCh"
        time.sleep(0.01)
    rf.Kill()
    deadline = time.monotonic() + 2
    while left := [t.name for t in threading.enumerate() if t not in threads0 and t.is_alive()]:
        assert time.monotonic() < deadline, f"threads still running after Kill: {left}"
        time.sleep(0.01)
    assert not ch.closed()


def test_chan_send_gives_up_when_stopped():
    ch = Chan()
    stop = threading.Event()
    result = []
    sender = threading.Thread(target=lambda: result.append(ch.send(1, stop=stop.is_set)))
    sender.start()
    time.sleep(0.05)
    assert sender.is_alive()  # blocked: nobody receives
    stop.set()
    ch.wake_senders()
    sender.join(2)
    assert not sender.is_alive() and result == [False]
    # The withdrawn offer is gone: a later send and receive pair up normally.
    threading.Thread(target=ch.send, args=(2,), daemon=True).start()
    assert ch.recv(timeout=2) == (2, True)


# ---- debug logging ----------------------------------------------------------------


class _Unprintable:
    def __repr__(self):
        raise AssertionError("DPrintf formatted its arguments while debugging is off")


def test_only_the_rpc_handlers_are_rpc_methods():
    # Go's labrpc takes only (args, reply) methods that return nothing; Snapshot(index, snapshot)
    # is the service's call, and a peer must not be able to invoke it over the network.
    import labrpc

    rf = Make([], 0, MakePersister(), Chan())
    try:
        assert sorted(labrpc.MakeService(rf).methods) == ["AppendEntries", "InstallSnapshot", "RequestVote"]
    finally:
        rf.Kill()


def test_dprintf_is_silent_and_lazy_when_debugging_is_off(monkeypatch, capsys):
    monkeypatch.setattr(util, "Debug", False)
    util.DPrintf("TEST", 1, "value %r", _Unprintable())
    assert capsys.readouterr().out == ""


def test_dprintf_prints_one_line_when_debugging_is_on(monkeypatch, capsys):
    monkeypatch.setattr(util, "Debug", True)
    util.DPrintf("TEST", 3, "value %d of %s", 7, "x")
    out = capsys.readouterr().out
    assert out.endswith(" TEST S3 value 7 of x\n") and out.count("\n") == 1, out
    assert out.split()[0].isdigit()


@pytest.mark.parametrize("verbose, debug", [(None, False), ("", False), ("0", False), ("1", True), ("2", True)])
def test_debug_follows_verbose(verbose, debug):
    env = {"PATH": "/usr/bin:/bin"}
    if verbose is not None:
        env["VERBOSE"] = verbose
    res = subprocess.run(
        [sys.executable, "-c", "import raft.util as u; print(u.Debug)"], env=env, capture_output=True, text=True
    )
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == str(debug)


# ---- the log type ----------------------------------------------------------------------


def _filled(n, first_term=1):
    log = Log()
    log.append([[first_term + i // 2, f"c{i + 1}"] for i in range(n)])  # terms 1,1,2,2,3,...
    return log


def _check_cache(log):
    entries = log.entries_from(log.lastIncludedIndex + 1)
    assert log.encoded_entries() == labgob.encode(entries)


def test_log_indexes_terms_and_commands():
    log = _filled(5)
    assert (log.last_index(), log.last_term()) == (5, 3)
    assert [log.term(i) for i in range(0, 6)] == [0, 1, 1, 2, 2, 3]
    assert log.commands(2, 4) == ["c2", "c3", "c4"]
    assert log.entries_from(6) == []
    assert log.first_of_term(4) == 3 and log.last_of_term(2) == 4 and log.last_of_term(9) is None
    _check_cache(log)


def test_log_truncate_compact_reset_keep_the_cache_in_step():
    log = _filled(6)
    log.truncate_from(5, 0)
    assert log.last_index() == 4
    _check_cache(log)
    log.compact_through(2)
    assert (log.lastIncludedIndex, log.lastIncludedTerm, log.last_index()) == (2, 1, 4)
    assert log.term(2) == 1 and log.commands(3, 4) == ["c3", "c4"]
    assert log.first_of_term(4) == 3  # never below the first entry held
    _check_cache(log)
    log.reset(10, 4)
    assert (log.last_index(), log.last_term(), log.entries_from(11)) == (10, 4, [])
    _check_cache(log)


def test_log_refuses_indexes_it_does_not_hold():
    log = _filled(4)
    log.compact_through(2)
    for bad in (1, 5):
        with pytest.raises(IndexError, match=f"log index {bad} outside 3..4"):
            log.term(bad)
    with pytest.raises(IndexError):
        log.truncate_from(2, 0)
    with pytest.raises(IndexError):
        log.entries_from(6)


def test_log_finds_the_first_conflict_and_judges_up_to_date():
    log = _filled(5)  # terms 1 1 2 2 3
    assert log.find_conflict(2, [[1, "c2"], [2, "c3"]]) == 2  # all held
    assert log.find_conflict(3, [[2, "x"], [4, "y"], [4, "z"]]) == 1  # index 4 holds term 2
    assert log.find_conflict(5, [[3, "c5"], [3, "new"]]) == 1  # index 6 is past the end
    assert log.find_conflict(6, []) == 0
    # §5.4.1: a later last term wins; with equal last terms, the longer log.
    assert log.is_up_to_date(1, 4) and log.is_up_to_date(5, 3) and log.is_up_to_date(9, 3)
    assert not log.is_up_to_date(4, 3) and not log.is_up_to_date(99, 2)


def test_log_refuses_to_truncate_a_committed_entry():
    log = _filled(6)
    with pytest.raises(AssertionError, match="refusing to truncate from index 4: entries up to the commit index 5"):
        log.truncate_from(4, 5)
    assert log.last_index() == 6
    _check_cache(log)
    log.truncate_from(6, 5)  # past the commit index: allowed
    assert log.last_index() == 5


def _follower_with_committed(n, commitIndex):
    """A peer (no threads) holding n entries of term 1, committed through commitIndex."""
    rf = raft.Raft([None] * 3, 0, MakePersister(), Chan())
    rf.log.append([[1, f"c{i}"] for i in range(1, n + 1)])
    rf.commitIndex = commitIndex
    return rf


def test_append_entries_that_would_drop_a_committed_entry_is_refused():
    # Planted: a "leader" of term 2 whose log lacks entries this follower has committed
    # (what a broken election rule would elect) sends a conflicting entry at index 2.
    args = raft.AppendEntriesArgs(Term=2, LeaderId=1, PrevLogIndex=1, PrevLogTerm=1, Entries=[[2, "x"]])
    rf = _follower_with_committed(3, 3)
    with pytest.raises(AssertionError, match="refusing to truncate from index 2: entries up to the commit index 3"):
        rf.AppendEntries(args, raft.AppendEntriesReply())
    assert rf.log.commands(1, 3) == ["c1", "c2", "c3"]
    # The same request to a follower that committed only index 1 is an ordinary conflict.
    rf = _follower_with_committed(3, 1)
    reply = raft.AppendEntriesReply()
    rf.AppendEntries(args, reply)
    assert reply.Success and rf.log.commands(1, 2) == ["c1", "x"] and rf.log.last_index() == 2


def test_persisted_log_after_appends_truncations_and_compaction_reads_back():
    rf = _follower_with_committed(8, 0)
    rf.currentTerm, rf.votedFor = 3, 2
    rf.log.truncate_from(7, 0)
    rf.log.append([[3, {"k": [1, 2]}], [3, "c8"]])
    rf.log.compact_through(3)
    rf.log.append([[3, "c9"]])
    rf.commitIndex = 5
    rf.persist()
    state = rf.persister.ReadRaftState()
    again = raft.Raft([None] * 3, 0, rf.persister, Chan())
    again.readPersist(state)
    assert (again.currentTerm, again.votedFor, again.commitIndex) == (3, 2, 5)
    assert (again.log.lastIncludedIndex, again.log.lastIncludedTerm) == (3, 1)
    assert again.log.entries_from(4) == rf.log.entries_from(4) == [
        [1, "c4"], [1, "c5"], [1, "c6"], [3, {"k": [1, 2]}], [3, "c8"], [3, "c9"]]
    # A corrupted state is refused with a clear error, never read as a fresh start.
    for bad in (state[:-3], state[:5] + b"\xc1" + state[6:]):
        with pytest.raises(ValueError, match="raft S0: corrupted persisted state"):
            raft.Raft([None] * 3, 0, MakePersister(), Chan()).readPersist(bad)


def test_log_append_of_an_unencodable_entry_changes_nothing():
    log = _filled(2)
    with pytest.raises(TypeError):
        log.append([[3, "ok"], [3, (1, 2)]])
    assert log.last_index() == 2
    _check_cache(log)


def test_print_line_writes_the_whole_line_at_once_under_the_debug_lock():
    # A print() writes text and newline apart, and a DPrintf line could land between them.
    writes = []

    class Stream:
        def write(self, text):
            writes.append((text, util._debug_lock.locked()))

        def flush(self):
            pass

    util.print_line("Test (2A): initial election ...", file=Stream())
    assert writes == [("Test (2A): initial election ...\n", True)]
