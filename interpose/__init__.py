"""The one place where the tools replace attributes of the standard library and
the interpreter: --sim (sim/), --race (race/) and the lock watchdog (lockwatch/).

Each tool holds its own Patches handle: patch(owner, name, value) records the
value it replaces and restore() puts them back in reverse order.  The tools
stack in a fixed order (sim, then race, then lockwatch, each wrapping what the
one before put in place), so they must come off in the opposite order: a
restore under a patch another handle still holds is refused, rather than
putting back a value that would drop the later tool's hook.

A name that is not there is an error, never skipped: these names are private
ones of CPython, and a tool that silently patched less on a newer Python would
silently check less.  check_python() refuses a Python whose internals nobody
checked (VERIFIED), unless PYLABS_UNVERIFIED_PYTHON=1 asks to try anyway.
"""

import os
import sys

__all__ = ["OVERRIDE", "VERIFIED", "MissingName", "Patches", "UnverifiedPython", "check_python"]

# The versions whose private names and bytecode sim/ and race/ were checked against
# (setup.cfg's python_requires is >=3.10; race/sites.py's opcode tables cover these).
VERIFIED = ((3, 10), (3, 11), (3, 12))
OVERRIDE = "PYLABS_UNVERIFIED_PYTHON"
version_info = sys.version_info  # the running version; tests put another one here

_ABSENT = object()  # the name was inherited, not in the owner's own __dict__
_live = []  # (handle, owner, name) of every patch in place, oldest first


class MissingName(AttributeError):
    pass


class UnverifiedPython(RuntimeError):
    pass


def _version(v=None):
    v = v or version_info
    return f"{v[0]}.{v[1]}.{v[2]}" if len(v) > 2 else f"{v[0]}.{v[1]}"


def check_python(tool):
    """Refuse to run `tool` on a Python outside VERIFIED."""
    v = tuple(version_info)
    if v[:2] in VERIFIED or os.environ.get(OVERRIDE) == "1":
        return
    verified = ", ".join(f"{a}.{b}" for a, b in VERIFIED)
    raise UnverifiedPython(
        f"{tool}: Python {_version(v)} is not one whose internals {tool} was checked against ({verified}): "
        f"the tools replace private names of threading, _thread and time (and --race reads bytecode), "
        f"and on another version they could check less without saying so. Run it with Python "
        f"{verified}, or set {OVERRIDE}=1 to try anyway (a name or opcode it does not know is then an error)."
    )


def _describe(owner):
    return getattr(owner, "__qualname__", None) or getattr(owner, "__name__", None) or repr(owner)


class Patches:
    """The replacements one tool made, to be put back by restore()."""

    def __init__(self, client):
        self.client = client
        self._saved = []  # (owner, name, own value or _ABSENT), in patch order

    def patch(self, owner, name, value):
        """Replace owner.name with value; returns the value it replaced."""
        if not hasattr(owner, name):
            raise MissingName(
                f"{self.client}: {_describe(owner)}.{name} does not exist on Python {_version()}: "
                f"the internals of this version differ from those {self.client} was written for"
            )
        original = getattr(owner, name)
        own = vars(owner).get(name, _ABSENT) if isinstance(owner, type) else original
        self._saved.append((owner, name, own))
        _live.append((self, owner, name))
        setattr(owner, name, value)
        return original

    def restore(self):
        """Put back every original this handle replaced, the latest first."""
        mine = {(id(o), n) for o, n, _ in self._saved}
        for i, (handle, owner, name) in enumerate(_live):
            if handle is self:
                later = [h.client for h, o, n in _live[i + 1 :] if h is not self and (id(o), n) in mine]
                if later:
                    raise RuntimeError(
                        f"{self.client}: cannot restore its patches while {', '.join(later)} "
                        f"still patch the same names: restore those first"
                    )
                break
        while self._saved:
            owner, name, own = self._saved.pop()
            if own is _ABSENT:
                delattr(owner, name)
            else:
                setattr(owner, name, own)
        _live[:] = [entry for entry in _live if entry[0] is not self]

    def __bool__(self):
        return bool(self._saved)
