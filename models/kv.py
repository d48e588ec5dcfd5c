"""Sequential model of one key of the key/value service. Python twin of models/kv.go."""
from __future__ import annotations

from dataclasses import dataclass

from porcupine import Model


@dataclass(slots=True)
class KvInput:
    Op: int = 0  # 0 => get, 1 => put, 2 => append
    Key: str = ""
    Value: str = ""


@dataclass(slots=True)
class KvOutput:
    Value: str = ""


def _partition(history):
    m = {}
    for v in history:
        m.setdefault(v.Input.Key, []).append(v)
    return [m[k] for k in sorted(m)]


def _init():
    # the state is the value of a single key: the history is partitioned by key
    return ""


def _step(state, input, output):
    op = input.Op
    if op == 0:  # get
        return output.Value == state, state
    if op == 1:  # put
        return True, input.Value
    return True, state + input.Value  # append


def _describeOperation(input, output):
    op = input.Op
    if op == 0:
        return f"get('{input.Key}') -> '{output.Value}'"
    if op == 1:
        return f"put('{input.Key}', '{input.Value}')"
    if op == 2:
        return f"append('{input.Key}', '{input.Value}')"
    return "<invalid>"


KvModel = Model(
    Partition=_partition,
    Init=_init,
    Step=_step,
    DescribeOperation=_describeOperation,
)
