"""Tests that tests/mtests/test_cluster.py runs through mtests.py --scheduler.

Like sample_cases.py, the file name keeps the main suite from collecting it.  The state
folder comes from the environment of the Dask workers that the test starts.
"""

import os
import time
from pathlib import Path


def _state() -> Path:
    return Path(os.environ["MTESTS_SAMPLE_STATE"])


def TestPage3Z():
    # A failing test that writes a page into mtests' output folder, as the kvraft tests
    # write their history pages: both the page and the log must come back from the worker.
    out = Path(os.environ["PYLABS_OUT"])
    out.mkdir(parents=True, exist_ok=True)
    (out / f"page-{os.environ['MTESTS_ITERATION']}.html").write_text("sample: page\n")
    print(f"sample: ran in {os.getcwd()}")
    assert False, "sample failure with a page"


def TestHeld3Z():
    # The first run of each iteration waits (until released, or killed with its worker);
    # a second run of the same iteration, which only a retry can be, passes at once.
    iteration = os.environ["MTESTS_ITERATION"]
    try:
        (_state() / f"started-{iteration}").open("x").close()
    except FileExistsError:
        print(f"sample: retry of iteration {iteration}")
        return
    with open(_state() / "held", "a") as f:
        f.write(f"{os.getpid()}\n")
    print(f"sample: holding iteration {iteration}", flush=True)
    while not (_state() / "release").exists():
        time.sleep(0.05)
