"""labgob's encoding cost against msgpack's own: a small RPC argument (a 5-field dataclass)
encoded by labgob.encode, by msgpack.packb of the same five values, and by a reused
msgpack.Packer.  labgob adds the type's name, an extension wrapper and its checks; the
figure to hold is labgob within 6x of packb.  Each figure is the median of ROUNDS rounds,
measured in one run so that the ratios hold on a loaded machine."""

import dataclasses
import statistics
import time

import msgpack

import labgob

ROUNDS = 7
CALLS = 20000


@dataclasses.dataclass
class BenchArgs:
    Term: int = 0
    LeaderId: int = 0
    PrevLogIndex: int = 0
    PrevLogTerm: int = 0
    LeaderCommit: int = 0


def _per_call(fn):
    rounds = []
    for _ in range(ROUNDS):
        t0 = time.perf_counter()
        for _ in range(CALLS):
            fn()
        rounds.append((time.perf_counter() - t0) / CALLS)
    return statistics.median(rounds)


def run():
    labgob.Register(BenchArgs)
    args = BenchArgs(Term=3, LeaderId=1, PrevLogIndex=100, PrevLogTerm=2, LeaderCommit=99)
    values = [3, 1, 100, 2, 99]
    packer = msgpack.Packer()
    ours = _per_call(lambda: labgob.encode(args))
    packb = _per_call(lambda: msgpack.packb(values))
    reused = _per_call(lambda: packer.pack(values))
    print("labgob: encoding a 5-field dataclass (median of "
          f"{ROUNDS} rounds of {CALLS} calls)")
    print(f"  labgob.encode          {ours * 1e6:7.2f} us")
    print(f"  msgpack.packb          {packb * 1e6:7.2f} us   labgob / packb = {ours / packb:.1f}x (bar: 6x)")
    print(f"  reused msgpack.Packer  {reused * 1e6:7.2f} us")
