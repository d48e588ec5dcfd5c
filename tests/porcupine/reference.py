"""Test oracles for the checker (no Go twin).

ref_checkSingle follows checker.go step by step with node objects and an eager scan of the
stack for partial linearizations, so the fast checker can be compared with it result for
result. brute_force_linearizable decides linearizability of a small key/value history by
trying every order that respects real time, without partitioning.
"""
from __future__ import annotations


class _Node:
    __slots__ = ("value", "match", "id", "next", "prev")

    def __init__(self, value, match, id):
        self.value = value
        self.match = match
        self.id = id
        self.next = None
        self.prev = None


def _insertBefore(n, mark):
    if mark is not None:
        before = mark.prev
        mark.prev = n
        n.next = mark
        if before is not None:
            n.prev = before
            before.next = n
    return n


def ref_checkSingle(model, history, computePartial, max_steps=None):
    """Returns (ok, longest); stops with ok=False after max_steps loop iterations if given."""
    root = None
    returns = {}
    for elem in reversed(history):
        if elem.kind:
            node = _Node(elem.value, None, elem.id)
            returns[elem.id] = node
        else:
            node = _Node(elem.value, returns.get(elem.id), elem.id)
        _insertBefore(node, root)
        root = node
    n = len(history) // 2
    linearized = frozenset()
    cache = {}
    calls = []
    longest = [None] * n
    state = model.Init()
    entry = root
    head = _insertBefore(_Node(None, None, -1), entry)
    steps = 0
    while head.next is not None:
        if max_steps is not None and steps >= max_steps:
            return False, longest
        steps += 1
        if entry.match is not None:
            ret = entry.match
            ok, newState = model.Step(state, entry.value, ret.value)
            newLinearized = linearized | {entry.id}
            if ok and not any(model.Equal(newState, s) for s in cache.get(newLinearized, [])):
                cache.setdefault(newLinearized, []).append(newState)
                calls.append((entry, state))
                state = newState
                linearized = newLinearized
                entry.prev.next = entry.next
                entry.next.prev = entry.prev
                ret.prev.next = ret.next
                if ret.next is not None:
                    ret.next.prev = ret.prev
                entry = head.next
            else:
                entry = entry.next
        else:
            if not calls:
                return False, longest
            if computePartial:
                seq = None
                for node, _ in calls:
                    if longest[node.id] is None or len(calls) > len(longest[node.id]):
                        if seq is None:
                            seq = [c.id for c, _ in calls]
                        longest[node.id] = seq
            entry, state = calls.pop()
            linearized = linearized - {entry.id}
            ret = entry.match
            ret.prev.next = ret
            if ret.next is not None:
                ret.next.prev = ret
            entry.prev.next = entry
            entry.next.prev = entry
            entry = entry.next
    seq = [c.id for c, _ in calls]
    return True, [seq] * n


def brute_force_linearizable(ops) -> bool:
    """Is there an order of ops, respecting real time, in which a dict store gives every output?"""
    n = len(ops)

    def search(done, store):
        if len(done) == n:
            return True
        pending = [i for i in range(n) if i not in done]
        for i in pending:
            # i may go next only if no pending operation returned before i was called
            if any(ops[j].Return < ops[i].Call for j in pending if j != i):
                continue
            inp, out = ops[i].Input, ops[i].Output
            cur = store.get(inp.Key, "")
            if inp.Op == 0:
                if out.Value != cur:
                    continue
                nxt = store
            else:
                nxt = dict(store)
                nxt[inp.Key] = inp.Value if inp.Op == 1 else cur + inp.Value
            if search(done | {i}, nxt):
                return True
        return False

    return search(frozenset(), {})
