"""The network tests drive the same browsers as the browser tests."""

from tests.e2e.conftest import playwright

__all__ = ["playwright"]
