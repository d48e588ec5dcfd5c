"""labgob: the encoder every RPC and every piece of persisted state goes through.

Go's labgob wraps encoding/gob and adds two checks.  This twin wraps msgpack:
registered dataclasses travel as msgpack extension values holding the type's
registered name and its init fields in order, so a decoded value is always a
fresh object of the same type and nothing is shared between peers.  As gob
does, decoding sets the fields without calling the class's constructor (no
__init__, no __post_init__).

Decoding into an existing object (Decoder.Decode(into), and labrpc filling a
caller's reply) follows gob too: gob does not send a field that holds its zero
value, so such a field of the target keeps whatever it held.  A field's zero
value here is its default, what a fresh T() holds, as Go's zero value is what
T{} holds.

Supported values: None, bool, int (Go's int64 range), float, str, bytes, list, dict and
registered dataclasses, nested freely.  Anything else raises TypeError naming
the type, at encode time, in the encoding thread.
"""

import copy
import dataclasses
import io
import sys
import threading
import typing

import msgpack

__all__ = [
    "DecodeError",
    "LabDecoder",
    "LabEncoder",
    "NewDecoder",
    "NewEncoder",
    "Register",
    "RegisterName",
    "decode",
    "encode",
    "fill",
]

_EXT_STRUCT = 1  # msgpack extension code of a registered dataclass

mu = threading.Lock()
errorCount = 0  # both warnings count here; the labgob tests read it
_by_name = {}  # registered name -> class
_by_class = {}  # class -> (registered name, init field names)
_defaults = {}  # class -> {field name: default value} for the Decode check
_zeros = {}  # class -> ((init field name, its zero value), ...), for filling a target
_rebuild = {}  # class -> (init names, ((init=False name, default), ...), has a __dict__)
_warned_default = False


class DecodeError(ValueError):
    """The bytes are not a labgob encoding (corrupted, truncated or foreign)."""


def Register(cls):
    """Register a dataclass under its class name; returns cls, so it works as a decorator."""
    return RegisterName(cls.__name__, cls)


def RegisterName(name, cls):
    if not (isinstance(cls, type) and dataclasses.is_dataclass(cls)):
        raise TypeError(f"labgob.Register: {cls!r} is not a dataclass type")
    with mu:
        old = _by_name.get(name)
        if old is not None and old is not cls and _qualified(old) != _qualified(cls):
            raise TypeError(
                f"labgob.Register: name {name!r} already registered for {_qualified(old)}"
            )
        if _by_class.get(cls, (None,))[0] == name:
            return cls
    fields = dataclasses.fields(cls)
    _check_fields(cls, fields)
    init_names = tuple(f.name for f in fields if f.init)
    defaults = {f.name: _default_of(f) for f in fields}
    no_init = tuple((f.name, defaults[f.name]) for f in fields if not f.init)
    with mu:
        _by_name[name] = cls
        _by_class[cls] = (name, init_names)
        _defaults[cls] = defaults
        _zeros[cls] = tuple((n, defaults[n]) for n in init_names)
        _rebuild[cls] = (init_names, no_init, not hasattr(cls, "__slots__") or "__dict__" in dir(cls))
    return cls


def _qualified(cls):
    return f"{cls.__module__}.{cls.__qualname__}"


def _default_of(f):
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return dataclasses.MISSING


_NO_ROUND_TRIP = (tuple, set, frozenset)
NO_DEFAULT_ADVICE = "give every field a default (Go's zero value: 0, \"\", False, None, or field(default_factory=list))"


def _check_fields(cls, fields):
    # Twin of Go's lower-case field check: a field that cannot survive a round trip.
    global errorCount
    for f in fields:
        why = None
        if not f.init:
            why = "is declared init=False, so it is not encoded"
        else:
            ann = f.type
            if isinstance(ann, str):
                try:
                    ann = typing.get_type_hints(cls).get(f.name, ann)
                except Exception:
                    pass
            origin = typing.get_origin(ann) or ann
            if origin in _NO_ROUND_TRIP:
                why = f"is annotated {getattr(origin, '__name__', origin)}, which labgob cannot encode"
            elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                # Every Go field has a zero value; labrpc makes a fresh reply with T().
                why = f"has no default: {NO_DEFAULT_ADVICE}"
        if why is not None:
            print(
                f"labgob error: field {f.name} of {cls.__name__} {why}; "
                "in RPC or persist/snapshot it will break your Raft",
                file=sys.stderr,
            )
            with mu:
                errorCount += 1


def _default_hook(obj):
    entry = _by_class.get(type(obj))
    if entry is None:
        cls = type(obj)
        if dataclasses.is_dataclass(cls):
            raise TypeError(f"labgob: type {cls.__qualname__} is not registered (call labgob.Register)")
        if cls is int:
            raise TypeError(f"labgob: integer {obj} is outside Go's int64 range")
        if isinstance(obj, int) and not isinstance(obj, bool):
            raise TypeError(f"labgob: cannot encode {cls.__qualname__} (an int subclass); pass int(value)")
        raise TypeError(f"labgob: cannot encode values of type {cls.__qualname__}")
    name, names = entry
    # Errors inside propagate to the outer _pack, which words them, and whose int64 check
    # of the whole value covers this one.  tuple.__new__ skips ExtType's own argument
    # checks (a Python __new__, costly per small value), which hold here.
    return _new_ext(_ExtType, (_EXT_STRUCT, _packed([name] + [getattr(obj, n) for n in names])))


_ExtType = msgpack.ExtType
_new_ext = tuple.__new__


# msgpack.packb makes a Packer, and with it a 256 KiB buffer, per call (and labgob packs
# once more per nested dataclass): reused packers make a small RPC's encoding several
# times cheaper.  Each thread keeps a stack of free ones; a nested pack (from
# _default_hook, inside an outer pack) takes another, since a packer is not reentrant.
_free = threading.local()
_KEEP_BUFFER = 256 * 1024  # bytes: what packb itself allocates for every call


def _packed(value):
    stack = getattr(_free, "packers", None)
    if stack is None:
        stack = _free.packers = []
    packer = stack.pop() if stack else msgpack.Packer(default=_default_hook, strict_types=True, use_bin_type=True)
    data = packer.pack(value)
    # Only a packer that finished goes back (one that raised may hold half a value), and
    # only a small one: its buffer never shrinks, and a thread may pack a snapshot once.
    if len(data) <= _KEEP_BUFFER:
        stack.append(packer)
    return data


def _pack(value):
    try:
        data = _packed(value)
    except OverflowError as e:
        raise TypeError(f"labgob: integer out of the 64-bit range: {e}") from None
    except UnicodeEncodeError as e:
        # A str holding a lone surrogate has no UTF-8 form (Go strings are bytes: pass bytes).
        raise TypeError(f"labgob: cannot encode a str that is not valid Unicode: {e}") from None
    # msgpack also takes ints up to 2**64-1 (as uint64, marker 0xcf); Go's int stops at
    # 2**63-1.  The marker byte is rare, so only then is the value walked to look.
    if b"\xcf" in data:
        _check_int64(value)
    return data


_INT64_MAX = (1 << 63) - 1


def _check_int64(value):
    t = type(value)
    if t is int:
        if value > _INT64_MAX:
            raise TypeError(f"labgob: integer {value} is outside Go's int64 range")
    elif t is list:
        for v in value:
            _check_int64(v)
    elif t is dict:
        for k, v in value.items():
            _check_int64(k)
            _check_int64(v)
    elif t in _by_class:
        for n in _by_class[t][1]:
            _check_int64(getattr(value, n))


def _ext_hook(code, data):
    if code != _EXT_STRUCT:
        raise DecodeError(f"labgob: unknown extension code {code}")
    fields = _unpack(data)
    if not isinstance(fields, list) or not fields or not isinstance(fields[0], str):
        raise DecodeError("labgob: malformed struct encoding")
    cls = _by_name.get(fields[0])
    if cls is None:
        raise DecodeError(f"labgob: type {fields[0]!r} is not registered on the decoding side")
    names, no_init, has_dict = _rebuild[cls]
    if len(fields) - 1 != len(names):
        raise DecodeError(f"labgob: cannot rebuild {fields[0]}: {len(fields) - 1} fields, expected {len(names)}")
    # Like gob, build the value without running its constructor: __init__ (which
    # may take keyword-only fields) and __post_init__ ran when the sender built it.
    obj = cls.__new__(cls)
    if has_dict:
        d = obj.__dict__
        d.update(zip(names, fields[1:]))
        for n, default in no_init:
            if default is not dataclasses.MISSING:
                d[n] = copy.copy(default)
    else:
        for n, v in zip(names, fields[1:]):
            object.__setattr__(obj, n, v)
        for n, default in no_init:
            if default is not dataclasses.MISSING:
                object.__setattr__(obj, n, copy.copy(default))
    return obj


def _unpack(data):
    return msgpack.unpackb(data, ext_hook=_ext_hook, raw=False, strict_map_key=False)


def encode(value):
    """Encode one value to bytes."""
    return _pack(value)


def decode(data):
    """Decode bytes holding exactly one value."""
    try:
        return _unpack(data)
    except DecodeError:
        raise
    except Exception as e:
        raise DecodeError(f"labgob: cannot decode {len(data)} bytes: {type(e).__name__} {e}") from None


class LabEncoder:
    def __init__(self, w):
        self._w = w

    def Encode(self, value):
        self._w.write(_pack(value))


class LabDecoder:
    def __init__(self, r):
        self._unpacker = msgpack.Unpacker(
            r, ext_hook=_ext_hook, raw=False, strict_map_key=False
        )

    def Decode(self, into=None):
        """Return the next value.  With `into` (a dataclass instance of the
        encoded type) the value's fields are copied into it and it is returned."""
        if into is not None:
            checkDefault(into)
        try:
            value = self._unpacker.unpack()
        except DecodeError:
            raise
        except msgpack.OutOfData:
            raise DecodeError("labgob: no more values to decode (truncated data?)") from None
        except Exception as e:
            raise DecodeError(f"labgob: cannot decode: {type(e).__name__} {e}") from None
        if into is None:
            return value
        if type(value) is not type(into):
            raise DecodeError(
                f"labgob: decoded a {type(value).__qualname__}, cannot fill a {type(into).__qualname__}"
            )
        fill(into, value)
        return into


def fill(into, value):
    """Copy decoded `value` into `into`, an object of the same registered type, as
    gob decodes into an existing value: a field of `value` that holds its zero
    value (its default) was not on gob's wire, so `into` keeps its own value
    there.  A nested registered dataclass is filled the same way, and a dict is
    merged into the dict `into` holds, as gob decodes into an existing map."""
    for name, zero in _zeros[type(value)]:
        v = getattr(value, name)
        if zero is not dataclasses.MISSING:
            if v is zero or (v == zero and type(v) is type(zero)):
                continue
        elif v is None or (type(v) in _ZERO_WHEN_EMPTY and not v):
            continue  # no default: Go's zero value of the type
        old = getattr(into, name, None)
        t = type(v)
        if t is type(old) and (t is dict or t in _zeros):
            if t is dict:
                old.update(v)
            else:
                fill(old, v)
            continue
        object.__setattr__(into, name, v)


_ZERO_WHEN_EMPTY = (bool, int, float, str, bytes, list, dict)


def NewEncoder(w=None):
    return LabEncoder(w if w is not None else io.BytesIO())


def NewDecoder(r):
    if isinstance(r, (bytes, bytearray, memoryview)):
        r = io.BytesIO(r)
    return LabDecoder(r)


def checkDefault(obj):
    """Twin of Go's default check: decoding into an object that already holds
    non-default values hides bugs (a reused reply, state read twice).  As in Go,
    each non-default scalar field counts once and only the first is reported."""
    global errorCount, _warned_default
    defaults = _defaults.get(type(obj))
    if defaults is None or vars(obj) == defaults:
        return
    for name, default in defaults.items():
        value = getattr(obj, name, default)
        if default is dataclasses.MISSING or type(value) not in _SCALARS or value == default:
            continue
        with mu:
            errorCount += 1
            first = not _warned_default
            _warned_default = True
        if first:
            print(
                f"labgob warning: Decoding into a non-default variable/field {name} "
                f"of {type(obj).__name__} may not work",
                file=sys.stderr,
            )


_SCALARS = (bool, int, float, str, bytes)
