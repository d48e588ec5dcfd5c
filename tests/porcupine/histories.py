"""Generators of random key/value histories for the checker tests (no Go twin)."""
from __future__ import annotations

import random

from models import KvInput, KvOutput
from porcupine import Operation

GET, PUT, APPEND = 0, 1, 2


def random_kv_history(
    rng: random.Random,
    nclients: int = 5,
    nops: int = 200,
    shared: float = 0.1,
    nkeys: int | None = None,
    max_gap: int = 50,
    max_dur: int = 100,
):
    """A random history that is linearizable by construction.

    Each client issues its operations one after another; with probability `shared` an operation
    uses a random key of `nkeys`, otherwise the client's own key. Each operation takes effect at
    a random point strictly inside [Call, Return], and outputs are computed by applying the
    operations to a dict in that order, so that order is a linearization.
    Returns (operations, effect points) with operations in client order.
    """
    nkeys = nclients if nkeys is None else nkeys
    ops = []
    points = []
    clock = [rng.randrange(max_gap) for _ in range(nclients)]
    counter = [0] * nclients
    for _ in range(nops):
        cli = rng.randrange(nclients)
        key = str(rng.randrange(nkeys)) if rng.random() < shared else str(cli)
        r = rng.random()
        op = APPEND if r < 0.5 else PUT if r < 0.6 else GET
        value = "" if op == GET else f"x {cli} {counter[cli]} y"
        counter[cli] += 1
        call = clock[cli] + rng.randrange(1, max_gap)
        ret = call + rng.randrange(1, max_dur)
        clock[cli] = ret
        ops.append(Operation(cli, KvInput(op, key, value), call, KvOutput(""), ret))
        points.append(call + (ret - call) * rng.uniform(0.01, 0.99))
    store = {}
    for i in sorted(range(len(ops)), key=points.__getitem__):
        inp = ops[i].Input
        cur = store.get(inp.Key, "")
        if inp.Op == GET:
            ops[i].Output = KvOutput(cur)
        elif inp.Op == PUT:
            store[inp.Key] = inp.Value
        else:
            store[inp.Key] = cur + inp.Value
    return ops, points


def skeleton_history(nops, nclients=15, seed=1):
    """A wrong solution's history: the skeleton's clerk returns "" at once and stores nothing.

    Random keys as in the linearizability tests; one operation after another, every Get "".
    A clerk that returns at once lets GenericTest's clients run millions of these in 5 s.
    """
    rng = random.Random(seed)
    ops = []
    for i in range(nops):
        cli = rng.randrange(nclients)
        key = str(rng.randrange(nclients))
        r = rng.random()
        op = APPEND if r < 0.5 else PUT if r < 0.6 else GET
        value = "" if op == GET else f"x {cli} {i} y"
        ops.append(Operation(cli, KvInput(op, key, value), 2 * i, KvOutput(""), 2 * i + 1))
    return ops


def appends_history(nops, nkeys, nclients=15):
    """A linearizable history: one append of "x" after another, over nkeys keys."""
    return [
        Operation(i % nclients, KvInput(APPEND, str(i % nkeys), "x"), 2 * i, KvOutput(""), 2 * i + 1)
        for i in range(nops)
    ]
