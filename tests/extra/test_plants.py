"""The extra tests catch the bugs they are for: each planted bug fails its test.

Each plant of tests/extra/plants.py is written into one copy of the project in
turn, and the extra test meant for it runs there under --sim on a few seeds, in
a subprocess: it must fail on every one, naming the rule of Figure 2 it broke,
while the unplanted copy passes the whole file on the same seeds.  The full
figures (20 seeds a plant, 200 clean seeds) are in docs/extra.md; this is the
cheap check that keeps them true.  Solution-only: the plants edit our
raft/raft.py, so the student export leaves this folder out (tools/skeleton.py).
"""

import re

import pytest

from .plants import PLANTS, RAFT, TEST_FILE, plant, planted_copy, run_extra

# Real pytest processes: --sim runs these in real time.
pytestmark = pytest.mark.realtime

SEEDS = (1, 2)

# plant -> (the extra test that catches it, what its failure says)
CAUGHT_BY = {
    "vote_not_persisted": ("TestExtraVoteSurvivesRestart", r"term \d+ has two leaders: \d and \d .*votedFor is persistent"),
    "stale_leader_ignores_reply_term": ("TestExtraOneWayPartition", r"still believes it leads .*response contains term"),
    "figure8_counts_old_term": ("TestExtraFigure8Scripted", r"entry \d+ of term \d+ was committed .*log\[N\]\.term == currentTerm"),
    "truncate_every_append": ("TestExtraDuplicateAppend", r"AppendEntries receiver 3"),
    "vote_keeps_timer": ("TestExtraCalmElections", r"granting a vote resets the election timer"),
    "slow_heartbeats": ("TestExtraCalmElections", r"Rules for Leaders 1"),
}


@pytest.fixture(scope="module")
def copy(tmp_path_factory):
    dest = planted_copy(tmp_path_factory.mktemp("extra") / "project")
    return dest, (dest / RAFT).read_text()


def test_every_plant_is_caught_by_a_test():
    assert sorted(CAUGHT_BY) == sorted(PLANTS)


def test_clean_solution_passes(copy):
    dest, original = copy
    (dest / RAFT).write_text(original)
    for seed in SEEDS:
        rc, out = run_extra(dest, TEST_FILE, seed)
        assert rc == 0, out
        assert "6 passed" in out, out


@pytest.mark.parametrize("name", sorted(PLANTS))
def test_planted_bug_fails(copy, name):
    dest, original = copy
    (dest / RAFT).write_text(original)
    plant(name, dest / RAFT)
    test, message = CAUGHT_BY[name]
    for seed in SEEDS:
        rc, out = run_extra(dest, f"{TEST_FILE}::{test}", seed)
        assert rc == 1, f"seed {seed}: {PLANTS[name][0]}: {test} passed\n{out}"
        assert f"FAILED {TEST_FILE}::{test}" in out, out
        assert re.search(message, out), f"seed {seed}: the failure does not name the rule:\n{out}"
        assert "Figure 2" in out, out
