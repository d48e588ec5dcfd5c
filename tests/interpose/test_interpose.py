"""Tests of the patch layer (interpose/) and of what the tools built on it refuse:
a name that is missing, a restore out of order, an unverified Python, an
opcode race/sites.py does not know, a race detector that misses a planted race."""

import threading
import types

import pytest

import interpose
import race
from race import detector, sites
from race import pytest_plugin as race_plugin


class Base:
    def inherited(self):
        return "base"


class Owner(Base):
    def own(self):
        return "own"


def test_missing_name_is_an_error_naming_it_and_the_version():
    ns = types.SimpleNamespace(here=1)
    p = interpose.Patches("tool")
    with pytest.raises(interpose.MissingName) as e:
        p.patch(ns, "gone", 2)
    v = interpose.version_info
    assert "gone" in str(e.value) and f"Python {v[0]}.{v[1]}.{v[2]}" in str(e.value) and "tool" in str(e.value)
    assert not hasattr(ns, "gone") and not p


def test_restore_puts_back_the_originals_in_reverse():
    before = dict(vars(Owner))
    ns = types.SimpleNamespace(f=1)
    p = interpose.Patches("tool")
    p.patch(Owner, "own", lambda self: "patched")
    p.patch(Owner, "inherited", lambda self: "patched")
    p.patch(ns, "f", 2)
    p.patch(ns, "f", 3)  # a second patch of the same name: restore goes back past both
    assert Owner().own() == Owner().inherited() == "patched" and ns.f == 3
    p.restore()
    assert dict(vars(Owner)) == before  # the inherited name is removed again, not copied in
    assert Owner().own() == "own" and Owner().inherited() == "base" and ns.f == 1
    assert not p


def test_stacked_tools_must_come_off_in_reverse_order():
    ns = types.SimpleNamespace(f="real")
    first, second = interpose.Patches("first"), interpose.Patches("second")
    first.patch(ns, "f", "first's")
    second.patch(ns, "f", "second's")
    with pytest.raises(RuntimeError, match="first: cannot restore .* second"):
        first.restore()
    assert ns.f == "second's"  # the refused restore changed nothing
    second.restore()
    assert ns.f == "first's"
    first.restore()
    assert ns.f == "real"


def test_unverified_python_is_refused_unless_asked(monkeypatch):
    monkeypatch.delenv(interpose.OVERRIDE, raising=False)
    monkeypatch.setattr(interpose, "version_info", (3, 99, 1, "final", 0))
    with pytest.raises(interpose.UnverifiedPython) as e:
        interpose.check_python("--sim")
    text = str(e.value)
    assert "--sim" in text and "3.99.1" in text and f"{interpose.OVERRIDE}=1" in text
    monkeypatch.setenv(interpose.OVERRIDE, "1")
    interpose.check_python("--sim")
    monkeypatch.delenv(interpose.OVERRIDE)
    for v in interpose.VERIFIED:
        monkeypatch.setattr(interpose, "version_info", (*v, 0, "final", 0))
        interpose.check_python("--sim")


def test_race_install_refuses_an_unverified_python(monkeypatch):
    # A fresh detector state, so the test means the same with or without --race.
    monkeypatch.setattr(detector, "_installed", False)
    monkeypatch.setattr(detector, "_patches", interpose.Patches("--race"))
    monkeypatch.delenv(interpose.OVERRIDE, raising=False)
    monkeypatch.setattr(interpose, "version_info", (3, 9, 18, "final", 0))
    lock = threading.Lock
    with pytest.raises(interpose.UnverifiedPython, match="--race: Python 3.9.18"):
        detector.install()
    assert threading.Lock is lock and not detector.installed()


def test_race_install_with_a_missing_name_patches_nothing(monkeypatch):
    class Fake:
        a = "real"

    monkeypatch.setattr(detector, "_installed", False)
    monkeypatch.setattr(detector, "_patches", interpose.Patches("--race"))
    monkeypatch.setattr(detector, "_HOOKS", [(Fake, "a", "hook"), (Fake, "gone", "hook")])
    with pytest.raises(interpose.MissingName, match="Fake.gone"):
        detector.install()
    assert Fake.a == "real" and not detector.installed() and (Fake, "a") not in detector._originals


def _field_store(self):
    self.log[0] = 1


def _load_offset(code, name):
    return next(i.offset for i in sites._code_instructions(code)[0] if i.opname == "LOAD_ATTR" and i.argval == name)


def test_sites_cover_this_python_and_name_an_unknown_opcode(monkeypatch):
    assert sites._UNKNOWN == frozenset()
    assert sites.unclassified(["LOAD_ATTR", "BINARY_ADD", "NEW_OPCODE"]) == ["NEW_OPCODE"]
    code = _field_store.__code__
    offset = _load_offset(code, "log")
    assert sites.mutates(code, offset, "log")
    # Plant: the store that consumes the load is an opcode the tables do not know.
    monkeypatch.setattr(sites, "_UNKNOWN", frozenset({"STORE_SUBSCR"}))
    monkeypatch.setattr(sites, "_cache", {})
    with pytest.raises(sites.UnknownOpcode, match="opcode STORE_SUBSCR of Python"):
        sites.mutates(code, offset, "log")


@pytest.fixture
def det(monkeypatch):
    """The detector installed (unless --race already did) and quiet."""
    monkeypatch.setattr(detector, "ECHO", False)
    was = race.installed()
    race.install()
    yield detector
    if not was:
        race.uninstall()


def test_self_test_passes_and_leaves_no_report(det):
    race_plugin.self_test()
    assert det.take_reports() == [] and det._shadows == {}
    assert not race.instrument.instrumented(race_plugin._Planted)


def test_self_test_fails_when_the_detector_is_broken(det, monkeypatch):
    monkeypatch.setattr(detector, "access", lambda *args, **kwargs: None)  # the plant: accesses go unseen
    with pytest.raises(race_plugin.SelfTestFailed, match="self-test failed"):
        race_plugin.self_test()
    assert not race.instrument.instrumented(race_plugin._Planted)
