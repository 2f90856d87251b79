"""Shared fixtures of the browser tests."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import sync_playwright


@pytest.fixture
def playwright() -> Iterator[Any]:
    with sync_playwright() as pw:
        yield pw
