"""Tiny tests that tests/mtests/test_mtests.py runs through mtests.py.

The file name does not match ``python_files = test_*.py``, so the main suite never collects
it; pytest still collects it when it is named on the command line (``mtests.py --path``).
"""

import os
import time

import pytest


def TestPass1X():
    print("sample: pass")


def TestFail1X():
    print("sample: about to fail")
    assert False, "sample failure"


def TestHang1X():
    # Tells the test that started it which process to look for once the run is killed.
    pidfile = os.environ.get("MTESTS_SAMPLE_PIDFILE")
    if pidfile:
        with open(pidfile, "a") as f:
            f.write(f"{os.getpid()}\n")
    print("sample: hanging", flush=True)
    while True:
        time.sleep(0.1)


def TestFlaky1X():
    # Fails on even iterations, so -n 4 gives exactly 2 failures.
    iteration = int(os.environ.get("MTESTS_ITERATION", "1"))
    print(f"sample: flaky iteration {iteration}")
    assert iteration % 2 == 1, f"even iteration {iteration}"


def TestVerbose2Y():
    print(f"sample: VERBOSE={os.environ.get('VERBOSE', '')}")


def TestPass2Y():
    print("sample: pass 2Y")


# No part suffix in its name, like shardctrler's TestBasic: only its marker (a registered
# one, so pytest does not warn) lets mtests.py select it.
@getattr(pytest.mark, "4B")
def TestMarkedOnly():
    print("sample: marked")
