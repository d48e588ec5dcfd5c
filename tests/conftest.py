pytest_plugins = ["race.pytest_plugin"]
