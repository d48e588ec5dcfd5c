"""The kvraft tests give the checker 1 s for histories of a few thousand operations.

The time a check takes is `python -m bench porcupine`'s figure (about a tenth of that
budget); here, on the same histories, the number of steps of the search, which is what
makes the time and does not depend on the machine: about one step per operation, where
a search that the cache no longer cut short would take exponentially many.
"""
from __future__ import annotations

import dataclasses
import random

from .histories import random_kv_history

from models import KvModel
from porcupine import CheckOperationsTimeout, CheckOperationsVerbose, Ok


def _counting(model):
    steps = [0]

    def step(state, input, output):
        steps[0] += 1
        return model.Step(state, input, output)

    return dataclasses.replace(model, Step=step), steps


def test_5000_op_history_within_kvraft_timeout():
    # 15 clients, mostly on their own key, some on random keys: like GenericTest's histories
    ops, _ = random_kv_history(random.Random(9), nclients=15, nops=5000, shared=0.1, max_dur=200)
    model, steps = _counting(KvModel)
    res, info = CheckOperationsVerbose(model, ops, 0)
    assert res == Ok
    assert steps[0] <= 2 * len(ops), f"{steps[0]} steps for {len(ops)} operations"


def test_5000_op_random_keys_history():
    # every operation on a random key of 5 (randomkeys in GenericTest), much more overlap
    ops, _ = random_kv_history(random.Random(10), nclients=5, nops=5000, shared=1.0, max_dur=300)
    model, steps = _counting(KvModel)
    assert CheckOperationsTimeout(model, ops, 0) == Ok
    assert steps[0] <= 3 * len(ops), f"{steps[0]} steps for {len(ops)} operations"
