"""Root test configuration: the real test environment is a pytest plugin in tests/env."""

pytest_plugins = ["tests.env.pytest_plugin"]
