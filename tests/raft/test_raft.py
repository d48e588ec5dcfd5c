"""Raft tests: twin of raft/test_test.go.

Same 28 tests, names, scenarios, loop counts, sleeps and thresholds as the Go
suite.  Goroutines are threads started with cfg.start_thread, so a failure in
one is recorded and fails the test from the main thread.  Run one part with
`pytest -k 2A` (or -m 2A).
"""

import queue
import random
import threading
import time

import pytest

from raft.util import print_line

from .config import SnapShotInterval, make_config, randstring

# The tester generously allows solutions to complete elections in one second
# (much more than the paper's range of timeouts).
RaftElectionTimeout = 1.0  # seconds

MAXLOGSIZE = 2000

PART_2A = getattr(pytest.mark, "2A")
PART_2B = getattr(pytest.mark, "2B")
PART_2C = getattr(pytest.mark, "2C")
PART_2D = getattr(pytest.mark, "2D")


def rand_int():
    """Go's rand.Int(): a non-negative 63-bit int."""
    return random.getrandbits(63)


def rand_int31():
    """Go's rand.Int31(): a non-negative 31-bit int."""
    return random.getrandbits(31)


def sleep_figure8():
    """Mostly a short pause, sometimes up to half an election timeout."""
    if random.randrange(1000) < 100:
        ms = random.randrange(int(RaftElectionTimeout * 1000) // 2)
        time.sleep(ms / 1000)
    else:
        ms = random.randrange(13)
        time.sleep(ms / 1000)


# ---------------------------------------------------------------- 2A


@PART_2A
def TestInitialElection2A():
    servers = 3
    cfg = make_config(servers, False, False)
    try:
        cfg.begin("Test (2A): initial election")

        # is a leader elected?
        cfg.checkOneLeader()

        # let the followers hear of the election before asking every peer
        # for its term.
        time.sleep(0.050)
        term1 = cfg.checkTerms()
        if term1 < 1:
            pytest.fail(f"term is {term1}, but should be at least 1")

        # without network failures, leader and term should stay put.
        time.sleep(2 * RaftElectionTimeout)
        term2 = cfg.checkTerms()
        if term1 != term2:
            print_line("warning: term changed even though there were no failures")

        # there should still be a leader.
        cfg.checkOneLeader()

        cfg.end()
    finally:
        cfg.cleanup()


@PART_2A
def TestReElection2A():
    servers = 3
    cfg = make_config(servers, False, False)
    try:
        cfg.begin("Test (2A): election after network failure")

        leader1 = cfg.checkOneLeader()

        # a disconnected leader must be replaced.
        cfg.disconnect(leader1)
        cfg.checkOneLeader()

        # the old leader coming back must not disturb the new one, and must
        # become a follower.
        cfg.connect(leader1)
        leader2 = cfg.checkOneLeader()

        # without a quorum no leader may be elected.
        cfg.disconnect(leader2)
        cfg.disconnect((leader2 + 1) % servers)
        time.sleep(2 * RaftElectionTimeout)

        # the only connected server must not think it leads.
        cfg.checkNoLeader()

        # once a quorum is back, it must elect a leader.
        cfg.connect((leader2 + 1) % servers)
        cfg.checkOneLeader()

        # the last server rejoining must not leave us without a leader.
        cfg.connect(leader2)
        cfg.checkOneLeader()

        cfg.end()
    finally:
        cfg.cleanup()


@PART_2A
def TestManyElections2A():
    servers = 7
    cfg = make_config(servers, False, False)
    try:
        cfg.begin("Test (2A): multiple elections")

        cfg.checkOneLeader()

        iters = 10
        for ii in range(1, iters):
            # take three servers off the net (possibly the same one twice).
            i1 = random.randrange(servers)
            i2 = random.randrange(servers)
            i3 = random.randrange(servers)
            cfg.disconnect(i1)
            cfg.disconnect(i2)
            cfg.disconnect(i3)

            # the leader is still there, or the others elect a new one.
            cfg.checkOneLeader()

            cfg.connect(i1)
            cfg.connect(i2)
            cfg.connect(i3)

        cfg.checkOneLeader()

        cfg.end()
    finally:
        cfg.cleanup()


# ---------------------------------------------------------------- 2B


@PART_2B
def TestBasicAgree2B():
    servers = 3
    cfg = make_config(servers, False, False)
    try:
        cfg.begin("Test (2B): basic agreement")

        iters = 3
        for index in range(1, iters + 1):
            nd, _ = cfg.nCommitted(index)
            if nd > 0:
                pytest.fail("some have committed before Start()")

            xindex = cfg.one(index * 100, servers, False)
            if xindex != index:
                pytest.fail(f"got index {xindex} but expected {index}")

        cfg.end()
    finally:
        cfg.cleanup()


@PART_2B
def TestRPCBytes2B():
    # counts RPC bytes to check that each command goes to each peer only once.
    servers = 3
    cfg = make_config(servers, False, False)
    try:
        cfg.begin("Test (2B): RPC byte count")

        cfg.one(99, servers, False)
        bytes0 = cfg.bytesTotal()

        iters = 10
        sent = 0
        for index in range(2, iters + 2):
            cmd = randstring(5000)
            xindex = cfg.one(cmd, servers, False)
            if xindex != index:
                pytest.fail(f"got index {xindex} but expected {index}")
            sent += len(cmd)

        bytes1 = cfg.bytesTotal()
        got = bytes1 - bytes0
        expected = servers * sent
        if got > expected + 50000:
            pytest.fail(f"too many RPC bytes; got {got}, expected {expected}")

        cfg.end()
    finally:
        cfg.cleanup()


@PART_2B
def TestFollowerFailure2B():
    # followers fail one after the other.
    servers = 3
    cfg = make_config(servers, False, False)
    try:
        cfg.begin("Test (2B): test progressive failure of followers")

        cfg.one(101, servers, False)

        # take one follower off the net.
        leader1 = cfg.checkOneLeader()
        cfg.disconnect((leader1 + 1) % servers)

        # leader and the other follower still agree.
        cfg.one(102, servers - 1, False)
        time.sleep(RaftElectionTimeout)
        cfg.one(103, servers - 1, False)

        # take the other follower off too.
        leader2 = cfg.checkOneLeader()
        cfg.disconnect((leader2 + 1) % servers)
        cfg.disconnect((leader2 + 2) % servers)

        # submit a command.
        index, _, ok = cfg.rafts[leader2].Start(104)
        if ok is not True:
            pytest.fail("leader rejected Start()")
        if index != 4:
            pytest.fail(f"expected index 4, got {index}")

        time.sleep(2 * RaftElectionTimeout)

        # 104 must not have committed.
        n, _ = cfg.nCommitted(index)
        if n > 0:
            pytest.fail(f"{n} committed but no majority")

        cfg.end()
    finally:
        cfg.cleanup()


@PART_2B
def TestLeaderFailure2B():
    # leaders fail one after the other.
    servers = 3
    cfg = make_config(servers, False, False)
    try:
        cfg.begin("Test (2B): test failure of leaders")

        cfg.one(101, servers, False)

        # take the first leader off the net.
        leader1 = cfg.checkOneLeader()
        cfg.disconnect(leader1)

        # the two followers elect a new leader.
        cfg.one(102, servers - 1, False)
        time.sleep(RaftElectionTimeout)
        cfg.one(103, servers - 1, False)

        # take the new leader off the net too.
        leader2 = cfg.checkOneLeader()
        cfg.disconnect(leader2)

        # every server gets the command.
        for i in range(servers):
            cfg.rafts[i].Start(104)

        time.sleep(2 * RaftElectionTimeout)

        # 104 must not have committed.
        n, _ = cfg.nCommitted(4)
        if n > 0:
            pytest.fail(f"{n} committed but no majority")

        cfg.end()
    finally:
        cfg.cleanup()


@PART_2B
def TestFailAgree2B():
    # a follower that was disconnected takes part again once it is back.
    servers = 3
    cfg = make_config(servers, False, False)
    try:
        cfg.begin("Test (2B): agreement after follower reconnects")

        cfg.one(101, servers, False)

        # take one follower off the net.
        leader = cfg.checkOneLeader()
        cfg.disconnect((leader + 1) % servers)

        # leader and the other follower still agree.
        cfg.one(102, servers - 1, False)
        cfg.one(103, servers - 1, False)
        time.sleep(RaftElectionTimeout)
        cfg.one(104, servers - 1, False)
        cfg.one(105, servers - 1, False)

        # bring it back
        cfg.connect((leader + 1) % servers)

        # all three keep what was agreed and agree on new commands.
        cfg.one(106, servers, True)
        time.sleep(RaftElectionTimeout)
        cfg.one(107, servers, True)

        cfg.end()
    finally:
        cfg.cleanup()


@PART_2B
def TestFailNoAgree2B():
    servers = 5
    cfg = make_config(servers, False, False)
    try:
        cfg.begin("Test (2B): no agreement if too many followers disconnect")

        cfg.one(10, servers, False)

        # 3 of the 4 followers go away
        leader = cfg.checkOneLeader()
        cfg.disconnect((leader + 1) % servers)
        cfg.disconnect((leader + 2) % servers)
        cfg.disconnect((leader + 3) % servers)

        index, _, ok = cfg.rafts[leader].Start(20)
        if ok is not True:
            pytest.fail("leader rejected Start()")
        if index != 2:
            pytest.fail(f"expected index 2, got {index}")

        time.sleep(2 * RaftElectionTimeout)

        n, _ = cfg.nCommitted(index)
        if n > 0:
            pytest.fail(f"{n} committed but no majority")

        # heal the partition
        cfg.connect((leader + 1) % servers)
        cfg.connect((leader + 2) % servers)
        cfg.connect((leader + 3) % servers)

        # the three may have elected one of their own, which lacks index 2.
        leader2 = cfg.checkOneLeader()
        index2, _, ok2 = cfg.rafts[leader2].Start(30)
        if not ok2:
            pytest.fail("leader2 rejected Start()")
        if index2 < 2 or index2 > 3:
            pytest.fail(f"unexpected index {index2}")

        cfg.one(1000, servers, True)

        cfg.end()
    finally:
        cfg.cleanup()


@PART_2B
def TestConcurrentStarts2B():
    servers = 3
    cfg = make_config(servers, False, False)
    try:
        cfg.begin("Test (2B): concurrent Start()s")

        success = False
        for attempt in range(5):
            if attempt > 0:
                # let the solution settle down
                time.sleep(3)

            leader = cfg.checkOneLeader()
            _, term, ok = cfg.rafts[leader].Start(1)
            if not ok:
                # the leader has already moved on
                continue

            iters = 5
            # Go: a channel with room for iters indices.
            is_ = queue.Queue(iters)

            def starter(i, leader, term):
                i, term1, ok = cfg.rafts[leader].Start(100 + i)
                if term1 != term:
                    return
                if ok is not True:
                    return
                is_.put(i)

            threads = [
                cfg.start_thread(starter, ii, leader, term, name=f"concurrent-start-{ii}")
                for ii in range(iters)
            ]
            for th in threads:
                th.join()
            indices = []
            while not is_.empty():
                indices.append(is_.get())

            # a term change means we cannot expect every Start() to succeed.
            if any(cfg.rafts[j].GetState()[0] != term for j in range(servers)):
                continue

            failed = False
            cmds = []
            for index in indices:
                cmd = cfg.wait(index, servers, term)
                if isinstance(cmd, int):
                    if cmd == -1:
                        # peers moved on to a later term, so some Start()s
                        # may legitimately have been lost
                        failed = True
                        break
                    cmds.append(cmd)
                else:
                    pytest.fail(f"value {cmd} is not an int")

            if failed:
                # Go drains the channel here so no goroutine blocks; the
                # starter threads have all ended already.
                continue

            for ii in range(iters):
                x = 100 + ii
                ok = False
                for j in range(len(cmds)):
                    if cmds[j] == x:
                        ok = True
                if not ok:
                    pytest.fail(f"cmd {x} missing in {cmds}")

            success = True
            break

        if not success:
            pytest.fail("term changed too often")

        cfg.end()
    finally:
        cfg.cleanup()


@PART_2B
def TestRejoin2B():
    servers = 3
    cfg = make_config(servers, False, False)
    try:
        cfg.begin("Test (2B): rejoin of partitioned leader")

        cfg.one(101, servers, True)

        # the leader loses the network
        leader1 = cfg.checkOneLeader()
        cfg.disconnect(leader1)

        # the old leader appends entries it cannot commit
        cfg.rafts[leader1].Start(102)
        cfg.rafts[leader1].Start(103)
        cfg.rafts[leader1].Start(104)

        # the new leader commits, index 2 included
        cfg.one(103, 2, True)

        # the new leader loses the network
        leader2 = cfg.checkOneLeader()
        cfg.disconnect(leader2)

        # the old leader comes back
        cfg.connect(leader1)

        cfg.one(104, 2, True)

        # everyone together again
        cfg.connect(leader2)

        cfg.one(105, servers, True)

        cfg.end()
    finally:
        cfg.cleanup()


@PART_2B
def TestBackup2B():
    servers = 5
    cfg = make_config(servers, False, False)
    try:
        cfg.begin("Test (2B): leader backs up quickly over incorrect follower logs")

        cfg.one(rand_int(), servers, True)

        # leader and one follower alone in a partition
        leader1 = cfg.checkOneLeader()
        cfg.disconnect((leader1 + 2) % servers)
        cfg.disconnect((leader1 + 3) % servers)
        cfg.disconnect((leader1 + 4) % servers)

        # many commands that cannot commit
        for i in range(50):
            cfg.rafts[leader1].Start(rand_int())

        time.sleep(RaftElectionTimeout / 2)

        cfg.disconnect((leader1 + 0) % servers)
        cfg.disconnect((leader1 + 1) % servers)

        # let the other partition get going
        cfg.connect((leader1 + 2) % servers)
        cfg.connect((leader1 + 3) % servers)
        cfg.connect((leader1 + 4) % servers)

        # many commands the new group commits
        for i in range(50):
            cfg.one(rand_int(), 3, True)

        # again a partitioned leader with one follower
        leader2 = cfg.checkOneLeader()
        other = (leader1 + 2) % servers
        if leader2 == other:
            other = (leader2 + 1) % servers
        cfg.disconnect(other)

        # more commands that cannot commit
        for i in range(50):
            cfg.rafts[leader2].Start(rand_int())

        time.sleep(RaftElectionTimeout / 2)

        # the original leader's partition comes back,
        for i in range(servers):
            cfg.disconnect(i)
        cfg.connect((leader1 + 0) % servers)
        cfg.connect((leader1 + 1) % servers)
        cfg.connect(other)

        # many commands the new group commits
        for i in range(50):
            cfg.one(rand_int(), 3, True)

        # and now everyone
        for i in range(servers):
            cfg.connect(i)
        cfg.one(rand_int(), servers, True)

        cfg.end()
    finally:
        cfg.cleanup()


@PART_2B
def TestCount2B():
    servers = 3
    cfg = make_config(servers, False, False)
    try:
        cfg.begin("Test (2B): RPC counts aren't too high")

        def rpcs():
            n = 0
            for j in range(servers):
                n += cfg.rpcCount(j)
            return n

        leader = cfg.checkOneLeader()

        total1 = rpcs()

        if total1 > 30 or total1 < 1:
            pytest.fail(f"too many or few RPCs ({total1}) to elect initial leader")

        total2 = 0
        success = False
        for attempt in range(5):
            if attempt > 0:
                # let the solution settle down
                time.sleep(3)

            leader = cfg.checkOneLeader()
            total1 = rpcs()

            iters = 10
            starti, term, ok = cfg.rafts[leader].Start(1)
            if not ok:
                # the leader has already moved on
                continue
            cmds = []
            retry = False  # Go: `continue loop` from the inner loops
            for i in range(1, iters + 2):
                x = rand_int31()
                cmds.append(x)
                index1, term1, ok = cfg.rafts[leader].Start(x)
                if term1 != term:
                    # the term changed while starting
                    retry = True
                    break
                if not ok:
                    # no longer the leader, so the term has changed
                    retry = True
                    break
                if starti + i != index1:
                    pytest.fail("Start() failed")
            if retry:
                continue

            for i in range(1, iters + 1):
                cmd = cfg.wait(starti + i, servers, term)
                if not isinstance(cmd, int) or cmd != cmds[i - 1]:
                    if cmd == -1:
                        # the term changed: try again
                        retry = True
                        break
                    pytest.fail(
                        f"wrong value {cmd} committed for index {starti + i}; expected {cmds}"
                    )
            if retry:
                continue

            failed = False
            total2 = 0
            for j in range(servers):
                t, _ = cfg.rafts[j].GetState()
                if t != term:
                    # the term changed, so RPC counts may be high; total2 is
                    # still completed for the next attempt
                    failed = True
                total2 += cfg.rpcCount(j)

            if failed:
                continue

            if total2 - total1 > (iters + 1 + 3) * 3:
                pytest.fail(f"too many RPCs ({total2 - total1}) for {iters} entries")

            success = True
            break

        if not success:
            pytest.fail("term changed too often")

        time.sleep(RaftElectionTimeout)

        total3 = 0
        for j in range(servers):
            total3 += cfg.rpcCount(j)

        if total3 - total2 > 3 * 20:
            pytest.fail(f"too many RPCs ({total3 - total2}) for 1 second of idleness")

        cfg.end()
    finally:
        cfg.cleanup()


# ---------------------------------------------------------------- 2C


@PART_2C
def TestPersist12C():
    servers = 3
    cfg = make_config(servers, False, False)
    try:
        cfg.begin("Test (2C): basic persistence")

        cfg.one(11, servers, True)

        # crash and restart everyone
        for i in range(servers):
            cfg.start1(i, cfg.applier)
        for i in range(servers):
            cfg.disconnect(i)
            cfg.connect(i)

        cfg.one(12, servers, True)

        leader1 = cfg.checkOneLeader()
        cfg.disconnect(leader1)
        cfg.start1(leader1, cfg.applier)
        cfg.connect(leader1)

        cfg.one(13, servers, True)

        leader2 = cfg.checkOneLeader()
        cfg.disconnect(leader2)
        cfg.one(14, servers - 1, True)
        cfg.start1(leader2, cfg.applier)
        cfg.connect(leader2)

        cfg.wait(4, servers, -1)  # leader2 must have caught up before i3 goes down

        i3 = (cfg.checkOneLeader() + 1) % servers
        cfg.disconnect(i3)
        cfg.one(15, servers - 1, True)
        cfg.start1(i3, cfg.applier)
        cfg.connect(i3)

        cfg.one(16, servers, True)

        cfg.end()
    finally:
        cfg.cleanup()


@PART_2C
def TestPersist22C():
    servers = 5
    cfg = make_config(servers, False, False)
    try:
        cfg.begin("Test (2C): more persistence")

        index = 1
        for iters in range(5):
            cfg.one(10 + index, servers, True)
            index += 1

            leader1 = cfg.checkOneLeader()

            cfg.disconnect((leader1 + 1) % servers)
            cfg.disconnect((leader1 + 2) % servers)

            cfg.one(10 + index, servers - 2, True)
            index += 1

            cfg.disconnect((leader1 + 0) % servers)
            cfg.disconnect((leader1 + 3) % servers)
            cfg.disconnect((leader1 + 4) % servers)

            cfg.start1((leader1 + 1) % servers, cfg.applier)
            cfg.start1((leader1 + 2) % servers, cfg.applier)
            cfg.connect((leader1 + 1) % servers)
            cfg.connect((leader1 + 2) % servers)

            time.sleep(RaftElectionTimeout)

            cfg.start1((leader1 + 3) % servers, cfg.applier)
            cfg.connect((leader1 + 3) % servers)

            cfg.one(10 + index, servers - 2, True)
            index += 1

            cfg.connect((leader1 + 4) % servers)
            cfg.connect((leader1 + 0) % servers)

        cfg.one(1000, servers, True)

        cfg.end()
    finally:
        cfg.cleanup()


@PART_2C
def TestPersist32C():
    servers = 3
    cfg = make_config(servers, False, False)
    try:
        cfg.begin("Test (2C): partitioned leader and one follower crash, leader restarts")

        cfg.one(101, 3, True)

        leader = cfg.checkOneLeader()
        cfg.disconnect((leader + 2) % servers)

        cfg.one(102, 2, True)

        cfg.crash1((leader + 0) % servers)
        cfg.crash1((leader + 1) % servers)
        cfg.connect((leader + 2) % servers)
        cfg.start1((leader + 0) % servers, cfg.applier)
        cfg.connect((leader + 0) % servers)

        cfg.one(103, 2, True)

        cfg.start1((leader + 1) % servers, cfg.applier)
        cfg.connect((leader + 1) % servers)

        cfg.one(104, servers, True)

        cfg.end()
    finally:
        cfg.cleanup()


@PART_2C
def TestFigure82C():
    # The scenarios of Figure 8 of the extended Raft paper.  Each iteration
    # has the leader, if any, append a command; that leader then fails, most
    # often quickly (the command may not commit), sometimes after a while (it
    # probably commits).  When too few servers are alive for a majority, one
    # may be restarted.  A leader of a later term may then try to finish
    # replicating entries that had not committed.
    servers = 5
    cfg = make_config(servers, False, False)
    try:
        cfg.begin("Test (2C): Figure 8")

        cfg.one(rand_int(), 1, True)

        nup = servers
        for iters in range(1000):
            leader = -1
            for i in range(servers):
                if cfg.rafts[i] is not None:
                    _, _, ok = cfg.rafts[i].Start(rand_int())
                    if ok:
                        leader = i

            sleep_figure8()

            if leader != -1:
                cfg.crash1(leader)
                nup -= 1

            if nup < 3:
                s = random.randrange(servers)
                if cfg.rafts[s] is None:
                    cfg.start1(s, cfg.applier)
                    cfg.connect(s)
                    nup += 1

        for i in range(servers):
            if cfg.rafts[i] is None:
                cfg.start1(i, cfg.applier)
                cfg.connect(i)

        cfg.one(rand_int(), servers, True)

        cfg.end()
    finally:
        cfg.cleanup()


@PART_2C
def TestUnreliableAgree2C():
    servers = 5
    cfg = make_config(servers, True, False)
    try:
        cfg.begin("Test (2C): unreliable agreement")

        threads = []  # Go: a sync.WaitGroup

        for iters in range(1, 50):
            for j in range(4):
                threads.append(
                    cfg.start_thread(
                        cfg.one, (100 * iters) + j, 1, True, name=f"unreliable-agree-{iters}-{j}"
                    )
                )
            cfg.one(iters, 1, True)

        cfg.setunreliable(False)

        for th in threads:
            th.join()

        cfg.one(100, servers, True)

        cfg.end()
    finally:
        cfg.cleanup()


@PART_2C
def TestFigure8Unreliable2C():
    servers = 5
    cfg = make_config(servers, True, False)
    try:
        cfg.begin("Test (2C): Figure 8 (unreliable)")

        cfg.one(rand_int() % 10000, 1, True)

        nup = servers
        for iters in range(1000):
            if iters == 200:
                cfg.setlongreordering(True)
            leader = -1
            for i in range(servers):
                _, _, ok = cfg.rafts[i].Start(rand_int() % 10000)
                if ok and cfg.connected[i]:
                    leader = i

            sleep_figure8()

            if leader != -1 and random.randrange(1000) < int(RaftElectionTimeout * 1000) // 2:
                cfg.disconnect(leader)
                nup -= 1

            if nup < 3:
                s = random.randrange(servers)
                if not cfg.connected[s]:
                    cfg.connect(s)
                    nup += 1

        for i in range(servers):
            if not cfg.connected[i]:
                cfg.connect(i)

        cfg.one(rand_int() % 10000, servers, True)

        cfg.end()
    finally:
        cfg.cleanup()


def internalChurn(unreliable):
    servers = 5
    cfg = make_config(servers, unreliable, False)
    try:
        if unreliable:
            cfg.begin("Test (2C): unreliable churn")
        else:
            cfg.begin("Test (2C): churn")

        stop = threading.Event()

        # the concurrent clients
        def cfn(me, ch):
            ret = None
            try:
                values = []
                # Go leaks the clients of a failed test; here they also stop
                # once cleanup has run.
                while not stop.is_set() and not cfg.checkFinished():
                    x = rand_int()
                    index = -1
                    ok = False
                    for i in range(servers):
                        # try them all, one of them may be the leader
                        with cfg.mu:
                            rf = cfg.rafts[i]
                        if rf is not None:
                            index1, _, ok1 = rf.Start(x)
                            if ok1:
                                ok = ok1
                                index = index1
                    if ok:
                        # the leader may or may not commit our value; do not
                        # wait forever.
                        for to in (10, 20, 50, 100, 200):
                            nd, cmd = cfg.nCommitted(index)
                            if nd > 0:
                                if isinstance(cmd, int):
                                    if cmd == x:
                                        values.append(x)
                                else:
                                    pytest.fail("wrong command type")
                                break
                            time.sleep(to / 1000)
                    else:
                        time.sleep((79 + me * 17) / 1000)
                ret = values
            finally:
                ch.put(ret)

        ncli = 3
        cha = []
        for i in range(ncli):
            # Go: an unbuffered channel; each client sends exactly once.
            cha.append(queue.Queue(1))
            cfg.start_thread(cfn, i, cha[i], name=f"churn-client-{i}")

        for iters in range(20):
            if random.randrange(1000) < 200:
                i = random.randrange(servers)
                cfg.disconnect(i)

            if random.randrange(1000) < 500:
                i = random.randrange(servers)
                if cfg.rafts[i] is None:
                    cfg.start1(i, cfg.applier)
                cfg.connect(i)

            if random.randrange(1000) < 200:
                i = random.randrange(servers)
                if cfg.rafts[i] is not None:
                    cfg.crash1(i)

            # Crashes and restarts come often enough that the peers have not
            # settled between two changes, but rarely enough that they can
            # often keep up: a bit less than an election timeout.
            time.sleep((RaftElectionTimeout * 7) / 10)

        time.sleep(RaftElectionTimeout)
        cfg.setunreliable(False)
        for i in range(servers):
            if cfg.rafts[i] is None:
                cfg.start1(i, cfg.applier)
            cfg.connect(i)

        stop.set()

        values = []
        for i in range(ncli):
            vv = cha[i].get()
            if vv is None:
                cfg.check_failure()  # the client's own message, if it recorded one
                pytest.fail("client failed")
            values.extend(vv)

        time.sleep(RaftElectionTimeout)

        lastIndex = cfg.one(rand_int(), servers, True)

        really = [0] * (lastIndex + 1)
        for index in range(1, lastIndex + 1):
            v = cfg.wait(index, servers, -1)
            if isinstance(v, int):
                really.append(v)
            else:
                pytest.fail("not an int")

        for v1 in values:
            ok = False
            for v2 in really:
                if v1 == v2:
                    ok = True
            if not ok:
                pytest.fail("didn't find a value")

        cfg.end()
    finally:
        cfg.cleanup()


@PART_2C
def TestReliableChurn2C():
    internalChurn(False)


@PART_2C
def TestUnreliableChurn2C():
    internalChurn(True)


# ---------------------------------------------------------------- 2D


def snapcommon(name, disconnect, reliable, crash):
    iters = 30
    servers = 3
    cfg = make_config(servers, not reliable, True)
    try:
        cfg.begin(name)

        cfg.one(rand_int(), servers, True)
        leader1 = cfg.checkOneLeader()

        for i in range(iters):
            victim = (leader1 + 1) % servers
            sender = leader1
            if i % 3 == 1:
                sender = (leader1 + 1) % servers
                victim = leader1

            if disconnect:
                cfg.disconnect(victim)
                cfg.one(rand_int(), servers - 1, True)
            if crash:
                cfg.crash1(victim)
                cfg.one(rand_int(), servers - 1, True)

            # maybe enough commands for a snapshot
            nn = (SnapShotInterval // 2) + random.randrange(SnapShotInterval)
            for _ in range(nn):
                cfg.rafts[sender].Start(rand_int())

            # let the appliers catch up with the Start()s
            if not disconnect and not crash:
                # every follower must be up to date, so that
                # TestSnapshotBasic2D needs no InstallSnapshot RPC.
                cfg.one(rand_int(), servers, True)
            else:
                cfg.one(rand_int(), servers - 1, True)

            if cfg.LogSize() >= MAXLOGSIZE:
                pytest.fail("Log size too large")
            if disconnect:
                # the follower comes back, perhaps so far behind that it
                # needs a snapshot to catch up.
                cfg.connect(victim)
                cfg.one(rand_int(), servers, True)
                leader1 = cfg.checkOneLeader()
            if crash:
                cfg.start1(victim, cfg.applierSnap)
                cfg.connect(victim)
                cfg.one(rand_int(), servers, True)
                leader1 = cfg.checkOneLeader()
        cfg.end()
    finally:
        cfg.cleanup()


@PART_2D
def TestSnapshotBasic2D():
    snapcommon("Test (2D): snapshots basic", False, True, False)


@PART_2D
def TestSnapshotInstall2D():
    snapcommon("Test (2D): install snapshots (disconnect)", True, True, False)


@PART_2D
def TestSnapshotInstallUnreliable2D():
    snapcommon("Test (2D): install snapshots (disconnect+unreliable)", True, False, False)


@PART_2D
def TestSnapshotInstallCrash2D():
    snapcommon("Test (2D): install snapshots (crash)", False, True, True)


@PART_2D
def TestSnapshotInstallUnCrash2D():
    snapcommon("Test (2D): install snapshots (unreliable+crash)", False, False, True)


@PART_2D
def TestSnapshotAllCrash2D():
    # do the servers persist their snapshots and restart from the snapshot
    # plus the rest of the log?
    servers = 3
    iters = 5
    cfg = make_config(servers, False, True)
    try:
        cfg.begin("Test (2D): crash and restart all servers")

        cfg.one(rand_int(), servers, True)

        for i in range(iters):
            # maybe enough for a snapshot
            nn = (SnapShotInterval // 2) + random.randrange(SnapShotInterval)
            for _ in range(nn):
                cfg.one(rand_int(), servers, True)

            index1 = cfg.one(rand_int(), servers, True)

            # crash everyone
            for j in range(servers):
                cfg.crash1(j)

            # restart everyone
            for j in range(servers):
                cfg.start1(j, cfg.applierSnap)
                cfg.connect(j)

            index2 = cfg.one(rand_int(), servers, True)
            if index2 < index1 + 1:
                pytest.fail(f"index decreased from {index1} to {index2}")
        cfg.end()
    finally:
        cfg.cleanup()


@PART_2D
def TestSnapshotInit2D():
    # do restarted servers load their snapshot into memory, so that later
    # writes of the persistent state do not lose it?
    servers = 3
    cfg = make_config(servers, False, True)
    try:
        cfg.begin("Test (2D): snapshot initialization after crash")
        cfg.one(rand_int(), servers, True)

        # enough commands for a snapshot
        nn = SnapShotInterval + 1
        for _ in range(nn):
            cfg.one(rand_int(), servers, True)

        # crash everyone
        for i in range(servers):
            cfg.crash1(i)

        # restart everyone
        for i in range(servers):
            cfg.start1(i, cfg.applierSnap)
            cfg.connect(i)

        # one command, so that something is written to persistent storage.
        cfg.one(rand_int(), servers, True)

        # crash everyone
        for i in range(servers):
            cfg.crash1(i)

        # restart everyone
        for i in range(servers):
            cfg.start1(i, cfg.applierSnap)
            cfg.connect(i)

        # one more command, which fails if the snapshot was lost
        cfg.one(rand_int(), servers, True)
        cfg.end()
    finally:
        cfg.cleanup()
