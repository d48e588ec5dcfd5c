"""The kvraft tests give the checker 1 s for histories of a few thousand operations."""
from __future__ import annotations

import random
import time

from .histories import random_kv_history

from models import KvModel
from porcupine import CheckOperationsTimeout, CheckOperationsVerbose, Ok


def test_5000_op_history_within_kvraft_timeout():
    # 15 clients, mostly on their own key, some on random keys: like GenericTest's histories
    ops, _ = random_kv_history(random.Random(9), nclients=15, nops=5000, shared=0.1, max_dur=200)
    start = time.perf_counter()
    res, info = CheckOperationsVerbose(KvModel, ops, 1.0)
    elapsed = time.perf_counter() - start
    print(f"checked {len(ops)} operations in {elapsed * 1000:.1f} ms")
    assert res == Ok, f"result {res} after {elapsed:.3f} s"
    assert elapsed < 0.5


def test_5000_op_random_keys_history():
    # every operation on a random key of 5 (randomkeys in GenericTest), much more overlap
    ops, _ = random_kv_history(random.Random(10), nclients=5, nops=5000, shared=1.0, max_dur=300)
    assert CheckOperationsTimeout(KvModel, ops, 1.0) == Ok
