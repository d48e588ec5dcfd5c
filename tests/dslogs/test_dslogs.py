"""Tests of dslogs.py, the viewer for Raft debug output."""

import io
import re
import subprocess
import sys
from pathlib import Path

import pytest

import dslogs

ROOT = Path(dslogs.__file__).resolve().parent
ANSI = re.compile(r"\x1b\[[0-9;]*m")

LOG = """\
Test (2A): initial election ...
000012 TEST starting test with 3 servers
000103 TIMR S0 election timeout, becoming candidate for T1
000104 VOTE S0 -> S1 requesting vote for T1
000105 VOTE S1 granting vote to S0 for T1
000106 VOTE S2 granting vote to S0 for T1
000110 LEAD S0 became leader for T1
000111 LOG1 S0 -> S2 sending heartbeat
000200 ERRO S4 a server beyond the columns
Traceback (most recent call last):
  ... Passed --   3.5  3   58   16040    0
"""


def view(*args, text=LOG, monkeypatch=None):
    out = io.StringIO()
    assert dslogs.main(list(args), stdin=io.StringIO(text), stdout=out) == 0
    return out.getvalue()


@pytest.fixture(autouse=True)
def no_env_colors(monkeypatch):
    monkeypatch.delenv("NO_COLOR", raising=False)


# ------------------------------------------------------------------ parsing


def test_parse_debug_line():
    ev = dslogs.parse_line("004711 VOTE S2 granting vote to S0 at T3\n")
    assert (ev.time, ev.topic, ev.server, ev.msg) == ("004711", "VOTE", 2, "granting vote to S0 at T3")
    assert ev.raw == "004711 VOTE S2 granting vote to S0 at T3"
    ev = dslogs.parse_line("12 LOG2 S10 x")
    assert (ev.time, ev.topic, ev.server, ev.msg) == ("12", "LOG2", 10, "x")


def test_parse_lines_without_server():
    ev = dslogs.parse_line("000012 TEST starting test")
    assert (ev.topic, ev.server, ev.msg) == ("TEST", None, "starting test")
    ev = dslogs.parse_line("000013 INFO Server0 is not an id")
    assert (ev.server, ev.msg) == (None, "Server0 is not an id")


@pytest.mark.parametrize("line", [
    "Test (2A): initial election ...",
    "  ... Passed --   3.5  3   58   16040    0",
    "Traceback (most recent call last):",
    "",
    "000012",
    "abc VOTE S1 x",
    "000012 vote S1 lower-case topic",
    "000012 TOOLONG S1 x",
])
def test_parse_rejects_other_lines(line):
    assert dslogs.parse_line(line) is None


def test_parse_topics():
    assert dslogs.parse_topics(None) is None
    assert dslogs.parse_topics(["vote,TIMR", " log1 ,"]) == {"VOTE", "TIMR", "LOG1"}


def test_every_topic_has_its_own_color():
    for topic in ["TIMR", "VOTE", "LEAD", "TERM", "LOG1", "LOG2", "CMIT", "PERS", "SNAP",
                  "DROP", "CLNT", "APLY", "INFO", "WARN", "ERRO", "TRCE", "TEST"]:
        assert topic in dslogs.TOPIC_COLORS
    assert len(set(dslogs.TOPIC_COLORS.values())) == len(dslogs.TOPIC_COLORS)


# ------------------------------------------------------------------ output


def test_one_line_per_event_without_columns():
    assert view() == LOG  # not a terminal: no colour, lines unchanged


def test_columns_place_events_under_their_server():
    out = view("-c", "3", "-w", "62")
    # (62 - 2 gaps) // 3 = 20 characters per column
    cw = 20
    hang = min(len("000105 "), cw // 3)  # continuation lines start this far in
    lines = out.splitlines()
    assert lines[0] == "S0".ljust(cw + 1) + "S1".ljust(cw + 1) + "S2"
    assert lines[1] == " ".join(["─" * cw] * 3)
    body = lines[2:]
    assert body[0] == "Test (2A): initial election ..."  # unparsed: full width
    assert body[1] == "000012 TEST starting test with 3 servers"  # harness: full width
    s1 = body.index(" " * (cw + 1) + "000105 VOTE granting")
    assert body[s1 + 1] == " " * (cw + 1 + hang) + "vote to S0 for"
    assert body[s1 + 2] == " " * (cw + 1 + hang) + "T1"
    s2 = body.index(" " * 2 * (cw + 1) + "000106 VOTE granting")
    assert s1 < s2
    # server 0 writes at the left margin, wrapped to the column width
    assert body[2] == "000103 TIMR election"
    for line in body:
        ev = dslogs.parse_line(line.strip())
        if line.startswith(" ") and ev is None and "Passed" not in line:
            col_start = len(line) - len(line.lstrip(" "))
            assert col_start % (cw + 1) in (0, hang), line  # a column or its hanging indent
    assert max(len(l) for l in body if l.startswith("0001")) <= cw
    # a server beyond the columns, and pytest's output, stay full width
    assert "000200 ERRO S4 a server beyond the columns" in body
    assert body[-2:] == ["Traceback (most recent call last):",
                         "  ... Passed --   3.5  3   58   16040    0"]


def test_column_width_defaults_to_160_when_not_a_tty():
    out = view("-c", "4", text="1 VOTE S3 x\n")
    cw = (160 - 3) // 4
    assert out.splitlines()[-1] == " " * 3 * (cw + 1) + "1 VOTE x"


def test_ignore_topics():
    out = view("-i", "vote", "-i", "TIMR,LOG1")
    assert "VOTE" not in out and "TIMR" not in out and "LOG1" not in out
    assert "000110 LEAD S0 became leader for T1" in out
    assert "000012 TEST starting test with 3 servers" in out
    assert "Test (2A): initial election ..." in out  # unparsed lines always shown


def test_just_topics():
    out = view("-j", "LEAD,erro")
    assert out.splitlines() == [
        "Test (2A): initial election ...",
        "000110 LEAD S0 became leader for T1",
        "000200 ERRO S4 a server beyond the columns",
        "Traceback (most recent call last):",
        "  ... Passed --   3.5  3   58   16040    0",
    ]
    # -i still applies to what -j kept
    assert "LEAD" not in view("-j", "LEAD,ERRO", "-i", "LEAD")


def test_colors_forced_and_per_topic():
    out = view("--color")
    lines = out.splitlines()
    vote = next(l for l in lines if "000104" in l)
    lead = next(l for l in lines if "000110" in l)
    assert vote.startswith("\x1b[") and vote.endswith("\x1b[0m")
    assert vote[:vote.index("m") + 1] != lead[:lead.index("m") + 1]
    assert ANSI.sub("", out) == LOG
    assert "\x1b" not in next(l for l in lines if l.startswith("Traceback"))
    # in columns, the colour starts after the indentation
    col = view("--color", "-c", "3", "-w", "62").splitlines()
    assert any(l.startswith(" " * 21 + "\x1b[38;5;") for l in col)


def test_no_color(monkeypatch):
    class FakeTTY(io.StringIO):
        def isatty(self):
            return True

    def run(*args):
        out = FakeTTY()
        dslogs.main(["-w", "100", *args], stdin=io.StringIO(LOG), stdout=out)
        return out.getvalue()

    assert "\x1b[" in run()  # a terminal gets colours
    assert run("--no-color") == LOG
    monkeypatch.setenv("NO_COLOR", "1")
    assert run() == LOG
    assert "\x1b[" in run("--color")


def test_command_line_file_and_stdin(tmp_path):
    log = tmp_path / "run.log"
    log.write_bytes(LOG.encode() + b"000300 WARN S1 bad byte \xff here\n")
    r = subprocess.run([sys.executable, str(ROOT / "dslogs.py"), str(log), "-j", "WARN"],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    assert "000300 WARN S1 bad byte \ufffd here" in r.stdout
    assert "\x1b" not in r.stdout  # a pipe is not a terminal
    r = subprocess.run([sys.executable, str(ROOT / "dslogs.py"), "-c", "3"], input=LOG,
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines()[0].startswith("S0")
    r = subprocess.run([sys.executable, str(ROOT / "dslogs.py"), str(tmp_path / "missing")],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 1 and "missing" in r.stderr
