"""Plugins that every test under tests/ runs with."""

# gotest: an exception in any thread fails the test; a whole-test limit (--test-timeout).
pytest_plugins = ["tests.gotest"]
