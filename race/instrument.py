"""Make the field reads and writes of a class's instances visible to the detector.

The class itself gets a __getattribute__ and a __setattr__ (and __delattr__)
that do what the originals do and then report the access, so instances keep
their type, their identity and their __dict__: labgob, `is` and isinstance see
nothing new.  Methods, properties, dunder names and the class's atomic fields
(detector.atomic_fields) are not fields and cost only a set lookup.
"""

import sys
import types

from . import detector

__all__ = ["instrument_class", "instrument_module", "instrumented", "uninstrument_class"]

_getframe = sys._getframe
_object_getattribute = object.__getattribute__

_instrumented = {}  # class -> the (__getattribute__, __setattr__, __delattr__) it had in its own __dict__

_NOT_FIELDS = (types.FunctionType, staticmethod, classmethod, property, types.BuiltinFunctionType,
               types.MethodDescriptorType, types.WrapperDescriptorType, type)


def _methods(cls):
    """Names that are not fields: methods and other callables of the class and
    its bases, properties, dunders.  Slot descriptors and plain class values
    (dataclass defaults) are fields."""
    names = set()
    for klass in cls.__mro__:
        for name, value in vars(klass).items():
            if name.startswith("__") or isinstance(value, _NOT_FIELDS):
                names.add(name)
    return names


def instrument_class(cls):
    """Track the fields of cls's instances (idempotent)."""
    if cls in _instrumented or any(base in _instrumented for base in cls.__mro__[1:]):
        return cls  # a subclass of an instrumented class is tracked through it
    own = vars(cls)
    _instrumented[cls] = tuple(own.get(n) for n in ("__getattribute__", "__setattr__", "__delattr__"))
    skip = _methods(cls) | detector.atomic_fields(cls)
    atomic = detector.atomic_fields(cls)
    get = cls.__getattribute__
    if get is object.__getattribute__:
        get = _object_getattribute
    set_ = cls.__setattr__
    del_ = cls.__delattr__
    access = detector.access

    def __getattribute__(self, name):
        value = get(self, name)
        if name in skip or name[:2] == "__":
            return value
        access(self, name, False, _getframe(1), value)
        return value

    def __setattr__(self, name, value):
        set_(self, name, value)
        if name in atomic:
            return
        lock = value.wrapped_lock if hasattr(type(value), "wrapped_lock") else value  # lockwatch's LabLock
        if isinstance(lock, (detector.TrackedLock, detector.TrackedRLock)) and ":" in (lock.name or ":"):
            lock.name = f"{type(self).__qualname__}.{name}"  # name the lock after its field
        access(self, name, True, _getframe(1))

    def __delattr__(self, name):
        del_(self, name)
        if name not in atomic:
            access(self, name, True, _getframe(1))

    cls.__getattribute__ = __getattribute__
    cls.__setattr__ = __setattr__
    cls.__delattr__ = __delattr__
    return cls


def uninstrument_class(cls):
    saved = _instrumented.pop(cls, None)
    if saved is None:
        return
    for name, original in zip(("__getattribute__", "__setattr__", "__delattr__"), saved):
        if original is None:
            delattr(cls, name)
        else:
            setattr(cls, name, original)


def instrumented(cls):
    return cls in _instrumented


def instrument_module(module, exclude=()):
    """Instrument every class defined in module (not those it imports), except
    those in exclude and exceptions.  Returns the classes instrumented."""
    done = []
    for value in list(vars(module).values()):
        if (
            isinstance(value, type)
            and value.__module__ == module.__name__
            and value not in exclude
            and not issubclass(value, BaseException)
        ):
            instrument_class(value)
            done.append(value)
    return done
