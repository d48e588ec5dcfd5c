"""tests/progress.py: a line per test file, no progress dots running into the tests' titles.

Each test runs pytest -s in a subprocess on a sample file whose tests print titles as the
lab tests do, with the plugin and, to show what it removes, without it.
"""

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

SAMPLE = """
    def test_first():
        print("Test: first ...")
        print("  ... Passed")

    def test_second():
        print("Test: second ...")
        assert 1 == 2, "planted"

    def test_third():
        print("Test: third ...")
        print("  ... Passed")

    def test_quiet():
        pass
"""


def run(tmp_path, *args):
    (tmp_path / "test_sample.py").write_text(textwrap.dedent(SAMPLE))
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-s", "-p", "no:cacheprovider", "-c", os.devnull,
         "--rootdir", str(tmp_path), *args, "test_sample.py"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120,
    )
    return proc.stdout


@pytest.mark.parametrize("verbosity", [["-q"], []], ids=["quiet", "default"])
def test_a_line_per_file_and_no_dots(tmp_path, verbosity):
    out = run(tmp_path, "-p", "tests.progress", *verbosity)
    lines = out.splitlines()
    assert "Test: first ..." in lines and "Test: third ..." in lines, out  # titles start their lines
    assert "FAILED test_sample.py::test_second (0s)" in lines, out
    assert "test_sample.py: 3 passed, 1 failed in 0s" in lines, out
    assert not any(line.startswith((".", "F")) and "Test:" in line for line in lines), out
    assert not any(set(line) <= {".", "F"} and line for line in lines), out  # no bare line of dots


def test_without_it_the_dots_run_into_the_titles(tmp_path):
    # What the plugin is for: pytest's own dots, with -s.
    out = run(tmp_path, "-q")
    assert ".Test: second ..." in out and "FTest: third ..." in out, out
