"""Operation and event histories, the Model a history is checked against, and the verdicts.

Python twin of porcupine/model.go.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Callable, List, Optional

EventKind = bool
CallEvent: EventKind = False
ReturnEvent: EventKind = True


@dataclass(slots=True)
class Operation:
    """One completed client operation: its input, output, invocation and response times (ns)."""

    ClientId: int = 0  # zero-based; only the visualization needs it
    Input: Any = None
    Call: int = 0
    Output: Any = None
    Return: int = 0


@dataclass(slots=True)
class Event:
    """One half of an operation in an event history: its call (Value = input) or return (Value = output)."""

    ClientId: int = 0  # zero-based; only the visualization needs it
    Kind: EventKind = CallEvent
    Value: Any = None
    Id: int = 0


@dataclass
class Model:
    """A sequential specification. Unset fields are filled by checker.fillDefault.

    Partition / PartitionEvent: split a history into independent parts (a history is
    linearizable iff every part is). Init() -> state. Step(state, input, output) ->
    (ok, newState) and must not mutate state. Equal(s1, s2) -> bool. DescribeOperation(input,
    output) and DescribeState(state) -> str, for the visualization.
    """

    Partition: Optional[Callable[[List[Operation]], List[List[Operation]]]] = None
    PartitionEvent: Optional[Callable[[List[Event]], List[List[Event]]]] = None
    Init: Optional[Callable[[], Any]] = None
    Step: Optional[Callable[[Any, Any, Any], "tuple[bool, Any]"]] = None
    Equal: Optional[Callable[[Any, Any], bool]] = None
    DescribeOperation: Optional[Callable[[Any, Any], str]] = None
    DescribeState: Optional[Callable[[Any], str]] = None


def NoPartition(history):
    return [history]


def NoPartitionEvent(history):
    return [history]


def ShallowEqual(state1, state2):
    return state1 == state2


def goString(v) -> str:
    """Format a value roughly the way Go's %v does ({a b} for structs, [a b] for slices)."""
    if v is None:
        return "<nil>"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (str, int, float)):
        return str(v)
    if dataclasses.is_dataclass(v) and not isinstance(v, type):
        return "{" + " ".join(goString(getattr(v, f.name)) for f in dataclasses.fields(v)) + "}"
    if isinstance(v, (list, tuple)):
        return "[" + " ".join(goString(x) for x in v) + "]"
    if isinstance(v, dict):
        items = sorted(v.items(), key=lambda kv: str(kv[0]))
        return "map[" + " ".join(f"{goString(k)}:{goString(x)}" for k, x in items) + "]"
    return str(v)


def DefaultDescribeOperation(input, output):
    return f"{goString(input)} -> {goString(output)}"


def DefaultDescribeState(state):
    return goString(state)


class CheckResult(str):
    """Verdict of a check; compares equal to the plain strings "Ok", "Illegal", "Unknown"."""

    __slots__ = ()
    Ok: "CheckResult"
    Illegal: "CheckResult"
    Unknown: "CheckResult"


Unknown = CheckResult("Unknown")  # timed out
Ok = CheckResult("Ok")
Illegal = CheckResult("Illegal")
CheckResult.Unknown = Unknown
CheckResult.Ok = Ok
CheckResult.Illegal = Illegal
