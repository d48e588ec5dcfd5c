"""Plugins that every test under tests/ runs with."""

pytest_plugins = [
    # gotest: an exception in any thread fails the test; a whole-test limit (--test-timeout).
    "tests.gotest",
    # race: the opt-in --race detector (lockset rule); without --race it does nothing.
    "race.pytest_plugin",
]
