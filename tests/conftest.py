"""Root test configuration.

The real test environment (API server, etcd, MinIO, Ray) lives in the
tests.env plugin; model and audio fixtures in tests.fixtures. Nothing starts
unless a test asks for it.
"""

pytest_plugins = ["tests.env.pytest_plugin", "tests.fixtures.pytest_plugin"]
