"""Unit tests of the lockset race detector (race/).

Each test instruments classes of its own, runs a few threads and checks the
reports: a planted race must be reported (naming the field, both threads and
both stacks), the same code made correct (a lock, a hand-off) must not be.
The verdicts do not depend on how the threads happen to interleave: the
lockset rule and the start/join/channel edges decide, not timing.
"""

import dataclasses
import queue
import threading
import time

import pytest

import labgob
import race
from race import detector, sites
from raft import Chan


@pytest.fixture
def det(monkeypatch):
    """The detector installed (unless --race already did), fresh, quiet (these
    tests make races on purpose and take the reports), and any reports the test
    did not take dropped afterwards."""
    monkeypatch.setattr(detector, "ECHO", False)
    was = race.installed()
    race.install()
    race.reset()
    yield detector
    race.reset()
    if not was:
        race.uninstall()


@pytest.fixture
def instrument():
    done = []

    def inst(cls):
        race.instrument_class(cls)
        done.append(cls)
        return cls

    yield inst
    for cls in done:
        race.uninstrument_class(cls)


def run_threads(*targets, names=None):
    """Start every target, then join them all: the threads are concurrent."""
    threads = [
        threading.Thread(target=t, name=(names[i] if names else None), daemon=True)
        for i, t in enumerate(targets)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
        assert not t.is_alive()


def run_unordered(*targets, names=None):
    """Run the targets one after another, each started once the previous one has
    ended, but with no join in between: a fixed order that no happens-before
    edge records, so to the detector they are all concurrent."""
    threads = []
    for i, t in enumerate(targets):
        th = threading.Thread(target=t, name=(names[i] if names else None), daemon=True)
        th.start()
        deadline = time.monotonic() + 10
        while th.is_alive() and time.monotonic() < deadline:  # is_alive is no hand-off
            time.sleep(0.001)
        threads.append(th)
    for th in threads:
        th.join(10)
        assert not th.is_alive()


class Counter:
    def __init__(self):
        self.mu = threading.Lock()
        self.n = 0
        self.items = []
        self.table = {}
        self.dead = False

    def incr_unlocked(self):
        self.n += 1

    def incr_locked(self):
        with self.mu:
            self.n += 1


# ---- the lockset rule ----------------------------------------------------------------------


def test_unlocked_counter_is_reported(det, instrument):
    instrument(Counter)
    c = Counter()

    def work():
        for _ in range(100):
            c.incr_unlocked()

    run_threads(work, work, names=["worker-a", "worker-b"])
    reports = det.take_reports()
    assert len(reports) == 1, reports  # one race, reported once however often it recurs
    r = reports[0]
    assert "WARNING: DATA RACE" in r
    assert "field Counter.n of Counter object" in r
    assert "by thread 'worker-a'" in r and "by thread 'worker-b'" in r
    assert r.count("in Counter.incr_unlocked") == 2  # both stacks
    assert "no locks held" in r


class Pair:
    def __init__(self):
        self.v = 0

    def write_one(self):
        self.v = 1

    def write_two(self):
        self.v = 2


def test_one_report_per_field_and_pair_of_sites_in_either_order(det, instrument):
    instrument(Pair)
    first, second = Pair(), Pair()
    run_unordered(first.write_one, first.write_two)
    run_unordered(second.write_two, second.write_one)  # the same two sites, the other way round
    reports = det.take_reports()
    assert len(reports) == 1, reports


def test_locked_counter_is_not_reported(det, instrument):
    instrument(Counter)
    c = Counter()

    def work():
        for _ in range(100):
            c.incr_locked()

    run_threads(work, work, work)
    assert det.take_reports() == []
    assert c.n == 300


def test_one_unlocked_writer_among_locked_ones_is_reported(det, instrument):
    instrument(Counter)
    c = Counter()
    run_unordered(c.incr_locked, c.incr_locked, c.incr_unlocked, names=["locked-1", "locked-2", "unlocked"])
    (r,) = det.take_reports()
    assert "Counter.n" in r and "by thread 'unlocked' (no locks held)" in r
    assert "(locks held: Counter.mu)" in r  # the other side, with the lock named after its field


def test_different_locks_are_no_common_lock(det, instrument):
    instrument(Counter)
    c = Counter()
    other = threading.Lock()

    def with_other():
        with other:
            c.n += 1

    run_unordered(c.incr_locked, with_other, names=["with-mu", "with-other"])
    (r,) = det.take_reports()
    assert "Counter.n" in r and "'with-mu'" in r and "'with-other'" in r


def test_read_only_sharing_is_not_reported(det, instrument):
    instrument(Counter)
    c = Counter()
    c.items.append(1)  # initialisation, before the threads

    def reader():
        for _ in range(50):
            assert c.n == 0 and len(c.items) == 1 and c.items[0] == 1

    run_threads(reader, reader, reader)
    assert det.take_reports() == []


def test_read_shared_then_unlocked_write_is_reported(det, instrument):
    instrument(Counter)
    c = Counter()

    def write():
        c.n = 1

    run_unordered(lambda: c.n, lambda: c.n, write, names=["reader-1", "reader-2", "writer"])
    (r,) = det.take_reports()
    assert "Write of Counter.n by thread 'writer'" in r and "Previous read" in r


def test_dead_is_atomic_and_classes_can_add_atomics(det, instrument):
    class Peer:
        __race_atomic__ = ("stopping",)

        def __init__(self):
            self.dead = False
            self.stopping = False

    instrument(Counter)
    instrument(Peer)
    c, p = Counter(), Peer()

    def flip():
        c.dead = not c.dead
        p.dead = not p.dead
        p.stopping = not p.stopping

    run_threads(flip, flip)
    assert det.take_reports() == []


# ---- containers held in fields -----------------------------------------------------------


def test_unlocked_append_to_a_field_list_is_a_write(det, instrument):
    instrument(Counter)
    c = Counter()
    run_threads(lambda: c.items.append(1), lambda: c.items.append(2), names=["app-1", "app-2"])
    (r,) = det.take_reports()
    assert "field Counter.items" in r and "Write of Counter.items" in r


def test_element_and_dict_writes_are_writes(det, instrument):
    instrument(Counter)
    c = Counter()
    c.items.extend([0, 0])

    def set_item():
        c.items[1] = 5

    def set_key():
        c.table["k"] = 1

    def bump():
        c.table["k"] = c.table.get("k", 0) + 1

    run_threads(set_item, set_item)
    run_threads(set_key, bump)
    fields = sorted(r.split("field ")[1].split(" ")[0] for r in det.take_reports())
    assert fields == ["Counter.items", "Counter.table"]


def test_locked_container_writes_are_not_reported(det, instrument):
    instrument(Counter)
    c = Counter()

    def work():
        for i in range(20):
            with c.mu:
                c.items.append(i)
                c.table[i] = len(c.items)
                del c.items[:1]

    run_threads(work, work)
    assert det.take_reports() == []


class _Sites:
    def __init__(self):
        self.log = []
        self.d = {}

    def reads(self):
        return (len(self.log), self.log[0:1], self.d.get(1), 1 in self.d, list(self.log),
                sorted(self.log, reverse=True), self.log.index(0) if self.log else -1)

    def writes(self, k):
        self.log.append(k)
        self.log[0] = k
        self.log[0] += 1
        del self.log[1:]
        self.d.setdefault(k, []).append(k)
        self.d[k + 1] = self.d.get(k, 0)
        self.d.pop(k)
        self.log.extend([k])


def _loads(fn):
    """(offset, name, mutates) of every attribute load of self in fn."""
    import dis

    out = []
    for ins in dis.get_instructions(fn.__code__):
        if ins.opname == "LOAD_ATTR" and ins.argval in ("log", "d"):
            out.append((ins.argval, sites.mutates(fn.__code__, ins.offset, ins.argval)))
    return out


def test_site_analysis_tells_reads_from_writes():
    reads = _loads(_Sites.reads)
    assert reads and not any(m for _, m in reads), reads
    writes = _loads(_Sites.writes)
    # self.d.get(k, 0) on the right of `self.d[k + 1] = ...` is a read; the rest write.
    assert [m for _, m in writes] == [True, True, True, True, True, False, True, True, True], writes


def test_site_analysis_takes_an_offset_inside_the_loads_inline_cache():
    # Python 3.12 reports a specialised load by the offset of its last cache entry.
    import dis

    code = _Sites.writes.__code__
    instrs = list(dis.get_instructions(code))
    seen = []
    for ins, nxt in zip(instrs, instrs[1:]):
        if ins.opname == "LOAD_ATTR" and ins.argval in ("log", "d"):
            seen.append(sites.mutates(code, nxt.offset - 2, ins.argval))
    assert seen == [m for _, m in _loads(_Sites.writes)] and any(seen), seen


# ---- locks and conditions ---------------------------------------------------------------


def test_condition_wait_drops_the_lock_from_the_held_set(det, instrument):
    instrument(Counter)
    c = Counter()
    cond = threading.Condition(c.mu)
    seen = {}

    def waiter():
        with cond:
            seen["before"] = set(detector._current().locks)
            cond.wait_for(lambda: c.n > 0, timeout=10)
            seen["after"] = set(detector._current().locks)
            c.n += 1

    t = threading.Thread(target=waiter, name="waiter", daemon=True)
    t.start()
    deadline = time.monotonic() + 10
    while "before" not in seen and time.monotonic() < deadline:
        time.sleep(0.01)
    with cond:  # the waiter is inside wait(): it must not hold the lock, for the detector too
        held_by_waiter = set(detector._states[t.ident].locks)
        c.n += 1
        cond.notify()
    t.join(10)
    assert seen["before"] == {c.mu} and seen["after"] == {c.mu}
    assert held_by_waiter == set()
    assert det.take_reports() == []


def test_write_after_leaving_the_condition_is_reported(det, instrument):
    instrument(Counter)
    c = Counter()
    cond = threading.Condition(c.mu)

    def waiter():
        with cond:
            cond.wait_for(lambda: c.n > 0, timeout=10)
        c.n = 0  # outside the lock

    def notifier():
        with cond:
            c.n = 1
            cond.notify()

    run_threads(waiter, notifier, names=["waiter", "notifier"])
    (r,) = det.take_reports()
    assert "Write of Counter.n by thread 'waiter' (no locks held)" in r


def test_rlock_and_its_condition_are_tracked(det, instrument):
    instrument(Counter)
    c = Counter()
    c.mu = threading.RLock()
    cond = threading.Condition(c.mu)

    def work():
        with c.mu:
            with c.mu:  # reentrant: still held after the inner release
                pass
            c.n += 1
            cond.notify_all()
            cond.wait(0.001)
            c.n += 1

    run_threads(work, work)
    assert det.take_reports() == []
    with pytest.raises(RuntimeError):
        c.mu.release()  # not owned: the RLock's own error


# ---- happens-before hand-offs ---------------------------------------------------------------


def test_start_and_join_hand_a_field_over(det, instrument):
    instrument(Counter)
    c = Counter()
    c.n = 1  # unlocked, before start
    t = threading.Thread(target=c.incr_unlocked, daemon=True)
    t.start()
    t.join()
    c.n += 1  # unlocked, after join
    assert det.take_reports() == []


def test_without_join_the_main_thread_races(det, instrument):
    instrument(Counter)
    c = Counter()
    t = threading.Thread(target=c.incr_unlocked, name="child", daemon=True)
    t.start()
    time.sleep(0.05)  # the child is done by now, but nothing orders it before us
    c.n += 1
    t.join()
    (r,) = det.take_reports()
    assert "'child'" in r and "'MainThread'" in r
    # The main thread's stack ends at the test: pytest and pluggy, which called it, are not shown.
    assert "in test_without_join_the_main_thread_races" in r, r
    assert "_pytest" not in r and "pluggy" not in r, r


def test_channel_send_hands_an_object_over(det, instrument):
    instrument(Counter)
    ch = Chan()
    tracked_before = (Chan, "send") in detector._originals  # --race tracks it already
    detector.track_channel(Chan)
    try:

        def producer():
            c = Counter()
            c.n = 41
            c.items.append(1)
            ch.send(c)

        def consumer():
            c, ok = ch.recv()
            assert ok
            c.n += 1
            c.items.append(2)

        run_threads(producer, consumer)
        assert det.take_reports() == []

        def late_producer():
            c = Counter()
            ch.send(c)
            c.n = 1  # after the send: concurrent with the receiver

        def receiver():
            c, _ = ch.recv()
            c.n = 2

        run_threads(late_producer, receiver, names=["late-producer", "receiver"])
        (r,) = det.take_reports()
        assert "Counter.n" in r and "'late-producer'" in r and "'receiver'" in r
    finally:
        if not tracked_before:
            detector.untrack_channel(Chan)


def test_event_and_queue_hand_over(det, instrument):
    instrument(Counter)
    c = Counter()
    ev = threading.Event()
    q = queue.Queue()

    def first():
        c.n = 1
        ev.set()
        c.items.append(1)
        q.put(None)

    def second():
        ev.wait(10)
        c.n = 2
        q.get(timeout=10)
        c.items.append(2)

    run_threads(first, second)
    assert det.take_reports() == []


# ---- the objects stay what they were ------------------------------------------------------


@labgob.Register
@dataclasses.dataclass
class RaceProbeArgs:
    Term: int = 0
    Entries: list = dataclasses.field(default_factory=list)


def test_instrumented_objects_keep_type_identity_and_encoding(det, instrument):
    instrument(RaceProbeArgs)
    instrument(Counter)
    entries = [[1, "x"]]
    a = RaceProbeArgs(3, entries)
    assert type(a) is RaceProbeArgs and a.Entries is entries and vars(a) == {"Term": 3, "Entries": entries}
    assert labgob.decode(labgob.encode(a)) == a
    c = Counter()
    lst = [1]
    c.items = lst
    assert c.items is lst and type(c.items) is list
    assert det.take_reports() == []


def test_a_race_in_an_unwatched_class_is_not_reported(det):
    class Plain:
        n = 0

    p = Plain()

    def work():
        p.n += 1

    run_threads(work, work)
    assert det.take_reports() == []
