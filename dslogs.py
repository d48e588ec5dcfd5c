#!/usr/bin/env python3
"""Pretty-print the debug output of a Raft/kvraft test run.

    python3 dslogs.py [FILE] [-c N] [-i TOPICS] [-j TOPICS] [--no-color] [-w WIDTH]

Reads FILE (or standard input when FILE is missing or "-"), for instance a log kept by
``mtests.py -v`` or the output of ``VERBOSE=1 python -m pytest -s ...``.  Debug lines look like

    <ms since start> <TOPIC> S<id> <message>        e.g.  004711 VOTE S2 granting vote to S0 at T3

TOPIC is one of TIMR VOTE LEAD TERM LOG1 LOG2 CMIT PERS SNAP DROP CLNT APLY INFO WARN ERRO
TRCE TEST (any other four-character upper-case topic is accepted, uncoloured).

Without ``-c`` every event is one line.  With ``-c N`` the output has N columns, one per
server, and each event is written (wrapped) in the column of its server, so a run reads like
a sequence diagram.  The width is the terminal's, or 160 when the output is not a terminal
(``-w`` overrides it).  Lines without a server (the TEST topic, harness messages), lines of
servers beyond the N columns and lines that are not debug lines at all (pytest output,
tracebacks) are printed unchanged across the full width.

``-i VOTE,TIMR`` hides those topics, ``-j LOG1,LOG2`` keeps only those; both are comma
separated and may be repeated.  Lines that are not debug lines are always shown.  Each topic
has its own colour; ``--no-color``, a non-empty NO_COLOR variable or output that is not a
terminal turn colours off (``--color`` forces them on, for ``less -R``).
Only the standard library is used.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import sys
import textwrap
from dataclasses import dataclass

# 256-colour palette index per topic.
TOPIC_COLORS = {
    "TIMR": 245,  # grey
    "VOTE": 74,  # steel blue
    "LEAD": 178,  # gold
    "TERM": 113,  # green
    "LOG1": 68,  # blue
    "LOG2": 30,  # teal
    "CMIT": 139,  # mauve
    "PERS": 173,  # brown-orange
    "SNAP": 208,  # orange
    "DROP": 203,  # salmon
    "CLNT": 35,  # dark green
    "APLY": 116,  # light cyan
    "INFO": 252,  # light grey
    "WARN": 214,  # amber
    "ERRO": 196,  # red
    "TRCE": 160,  # dark red
    "TEST": 205,  # pink
}
TOPICS = tuple(TOPIC_COLORS)

NON_TTY_WIDTH = 160
MIN_COLUMN_WIDTH = 8

LINE_RE = re.compile(
    r"^\s*(?P<time>\d+)\s+(?P<topic>[A-Z][A-Z0-9]{3})(?![^\s])(?:\s+S(?P<server>\d+)\b)?\s*(?P<msg>.*)$"
)


@dataclass
class Event:
    """One parsed debug line; ``server`` is None for lines that belong to no server."""

    time: str
    topic: str
    server: int | None
    msg: str
    raw: str


def parse_line(line: str) -> Event | None:
    """The Event a debug line holds, or None for any other line."""
    text = line.rstrip("\r\n")
    m = LINE_RE.match(text)
    if not m:
        return None
    server = m.group("server")
    return Event(
        time=m.group("time"),
        topic=m.group("topic"),
        server=int(server) if server is not None else None,
        msg=m.group("msg").rstrip(),
        raw=text.rstrip(),
    )


def parse_topics(values: list[str] | None) -> set[str] | None:
    """["VOTE,timr", "LOG1"] -> {"VOTE", "TIMR", "LOG1"}; None when the option is absent."""
    if not values:
        return None
    return {t.strip().upper() for v in values for t in v.split(",") if t.strip()}


class Printer:
    def __init__(self, out, columns: int | None, width: int, color: bool,
                 include: set[str] | None, exclude: set[str] | None) -> None:
        self.out = out
        self.columns = columns
        self.width = width
        self.color = color
        self.include = include
        self.exclude = exclude or set()
        self.col_width = 0
        if columns:
            self.col_width = max(MIN_COLUMN_WIDTH, (width - (columns - 1)) // columns)

    def colored(self, text: str, topic: str) -> str:
        code = TOPIC_COLORS.get(topic)
        if not self.color or code is None or not text:
            return text
        bold = "1;" if topic in ("TEST", "ERRO") else ""
        return f"\x1b[{bold}38;5;{code}m{text}\x1b[0m"

    def shown(self, ev: Event) -> bool:
        if self.include is not None and ev.topic not in self.include:
            return False
        return ev.topic not in self.exclude

    def header(self) -> None:
        if not self.columns:
            return
        cw = self.col_width
        labels = " ".join(f"S{i}".ljust(cw) for i in range(self.columns))
        self.out.write(labels.rstrip() + "\n")
        self.out.write(" ".join("─" * cw for _ in range(self.columns)) + "\n")

    def line(self, line: str) -> None:
        ev = parse_line(line)
        if ev is None:
            self.out.write(line.rstrip("\r\n") + "\n")
            return
        if not self.shown(ev):
            return
        in_column = (
            self.columns
            and ev.server is not None
            and ev.topic != "TEST"
            and ev.server < self.columns
        )
        if not in_column:
            self.out.write(self.colored(ev.raw, ev.topic) + "\n")
            return
        cw = self.col_width
        text = f"{ev.time} {ev.topic} {ev.msg}".rstrip()
        indent = " " * ((cw + 1) * ev.server)
        # Continuation lines start under the topic, so the timestamps stand out.
        hang = " " * min(len(ev.time) + 1, cw // 3)
        pieces = textwrap.wrap(text, cw, subsequent_indent=hang, break_on_hyphens=False)
        for piece in pieces or [""]:
            self.out.write(indent + self.colored(piece, ev.topic) + "\n")


def use_color(args, out) -> bool:
    if args.no_color:
        return False
    if args.color:
        return True
    if os.environ.get("NO_COLOR"):
        return False
    try:
        return out.isatty()
    except (AttributeError, ValueError):
        return False


def output_width(args, out) -> int:
    if args.width:
        return args.width
    try:
        tty = out.isatty()
    except (AttributeError, ValueError):
        tty = False
    if not tty:
        return NON_TTY_WIDTH
    return shutil.get_terminal_size((NON_TTY_WIDTH, 24)).columns


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="dslogs.py",
        description="Show Raft debug output (VERBOSE=1) by topic and colour, optionally in "
        "one column per server.",
        epilog="Topics: " + " ".join(TOPICS),
    )
    p.add_argument("file", nargs="?", default="-", metavar="FILE",
                   help="log to read (default: standard input)")
    p.add_argument("-c", "--columns", type=int, metavar="N",
                   help="N columns, one per server (S0..S<N-1>)")
    p.add_argument("-i", "--ignore", action="append", metavar="TOPICS",
                   help="hide these topics (comma separated)")
    p.add_argument("-j", "--just", action="append", metavar="TOPICS",
                   help="show only these topics (comma separated)")
    p.add_argument("-w", "--width", type=int, metavar="N",
                   help="output width (default: the terminal's, or 160)")
    colors = p.add_mutually_exclusive_group()
    colors.add_argument("--no-color", action="store_true", help="no ANSI colours")
    colors.add_argument("--color", action="store_true",
                        help="colours even when the output is not a terminal")
    return p


def main(argv: list[str] | None = None, stdin=None, stdout=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    out = stdout if stdout is not None else sys.stdout
    if args.columns is not None and args.columns < 1:
        parser.error("-c must be at least 1")
    if args.width is not None and args.width < 1:
        parser.error("-w must be at least 1")
    printer = Printer(
        out,
        columns=args.columns,
        width=output_width(args, out),
        color=use_color(args, out),
        include=parse_topics(args.just),
        exclude=parse_topics(args.ignore),
    )
    if args.file == "-":
        source = stdin if stdin is not None else sys.stdin
        if hasattr(source, "reconfigure"):
            source.reconfigure(errors="replace")
        close = False
    else:
        try:
            source = open(args.file, encoding="utf-8", errors="replace")
        except OSError as e:
            print(f"dslogs.py: {e}", file=sys.stderr)
            return 1
        close = True
    try:
        printer.header()
        # readline rather than iteration, so a live pipe is shown line by line.
        for line in iter(source.readline, ""):
            printer.line(line)
        out.flush()
    finally:
        if close:
            source.close()
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit(130)
    except BrokenPipeError:  # e.g. `| head`: stop quietly
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        sys.exit(1)
