"""Measure the extra tests against the planted bugs: how many --sim seeds fail each.

    python -m tests.extra.measure [--seeds N] [--first S] [PLANT ...]   (clean: the name "clean")

For each plant (default: clean, then every plant of tests/extra/plants.py; its
VARIANTS, other forms of the same bugs, by name), a
planted copy of the project is made and `pytest tests/raft/test_extra.py --sim
--sim-seed S` runs once per seed, one process at a time; a seed counts as failed
when any extra test fails, and the tests that failed are tallied.  The table is
what docs/extra.md records.  It runs in the foreground, one pytest at a time.
"""

import argparse
import re
import tempfile
import time
from collections import Counter
from pathlib import Path

from .plants import PLANTS, TEST_FILE, VARIANTS, planted_copy, run_extra


def run_seed(copy, seed):
    """(passed, names of the failed tests) of one seed's run in the copy."""
    rc, out = run_extra(copy, TEST_FILE, seed)
    failed = sorted(set(re.findall(r"^FAILED \S+::(\w+)", out, re.M)))
    if rc not in (0, 1) or (rc == 1 and not failed):
        failed.append(f"pytest exit {rc}")
    return rc == 0, failed


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--first", type=int, default=1)
    parser.add_argument("plants", nargs="*", default=["clean", *PLANTS])
    args = parser.parse_args(argv)
    for name in args.plants:
        if name != "clean" and name not in PLANTS and name not in VARIANTS:
            parser.error(f"unknown plant {name!r}; expected clean or one of {sorted(PLANTS) + sorted(VARIANTS)}")
    print(f"| plant | seeds failed | failing tests | seconds |\n|---|---|---|---|")
    for name in args.plants:
        with tempfile.TemporaryDirectory(prefix="extra-") as tmp:
            copy = planted_copy(Path(tmp) / "p", None if name == "clean" else name)
            t0 = time.monotonic()
            nfailed, tests = 0, Counter()
            for seed in range(args.first, args.first + args.seeds):
                ok, failed = run_seed(copy, seed)
                if not ok:
                    nfailed += 1
                    tests.update(failed)
            took = time.monotonic() - t0
        names = ", ".join(f"{t} {n}" for t, n in tests.most_common()) or "-"
        print(f"| {name} | {nfailed}/{args.seeds} | {names} | {took:.0f} |", flush=True)


if __name__ == "__main__":
    main()
