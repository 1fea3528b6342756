"""Fixtures of the integration tests that drive a browser (mosquitto's is the suite's)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from playwright.async_api import Browser

from .browser import chromium


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    """A headless chromium for one test."""
    async with chromium() as browser:
        yield browser
