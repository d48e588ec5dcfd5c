"""Plugins that every test under tests/ runs with."""

pytest_plugins = [
    # gotest: an exception in any thread fails the test; a whole-test limit (--test-timeout).
    "tests.gotest",
    # race: the opt-in --race detector (lockset rule); without --race it does nothing.
    "race.pytest_plugin",
    # sim: the opt-in --sim mode (virtual clock, seeded scheduler); without --sim it does nothing.
    "sim.pytest_plugin",
    # lockwatch: lab locks know their owner; deadlocks and locks held across blocking calls
    # are reported (after race and sim: a lab lock wraps theirs).
    "lockwatch.pytest_plugin",
    # progress: a line per test file at -q and default verbosity, instead of dots.
    "tests.progress",
]
