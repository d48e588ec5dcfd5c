"""Public entry points of the checker. Python twin of porcupine/porcupine.go.

timeout is in seconds (a float); 0 or None means no timeout. A timed-out check answers
Unknown, never Illegal: the history may or may not be linearizable.
"""
from __future__ import annotations

from typing import List, Optional, Tuple

from .checker import LinearizationInfo, checkEvents, checkOperations
from .model import CheckResult, Event, Model, Ok, Operation


def CheckOperations(model: Model, history: List[Operation]) -> bool:
    res, _ = checkOperations(model, history, False, 0)
    return res == Ok


def CheckOperationsTimeout(model: Model, history: List[Operation], timeout: Optional[float]) -> CheckResult:
    res, _ = checkOperations(model, history, False, timeout)
    return res


def CheckOperationsVerbose(
    model: Model, history: List[Operation], timeout: Optional[float]
) -> Tuple[CheckResult, LinearizationInfo]:
    return checkOperations(model, history, True, timeout)


def CheckEvents(model: Model, history: List[Event]) -> bool:
    res, _ = checkEvents(model, history, False, 0)
    return res == Ok


def CheckEventsTimeout(model: Model, history: List[Event], timeout: Optional[float]) -> CheckResult:
    res, _ = checkEvents(model, history, False, timeout)
    return res


def CheckEventsVerbose(
    model: Model, history: List[Event], timeout: Optional[float]
) -> Tuple[CheckResult, LinearizationInfo]:
    return checkEvents(model, history, True, timeout)
