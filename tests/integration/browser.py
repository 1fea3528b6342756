"""Debian's chromium, driven by Playwright, kept off every host but the daemon's."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from playwright.async_api import Browser, Locator, Page, Route, async_playwright

from ringmaster.daemon.broker import MosquittoProcess, free_port
from ringmaster.daemon.service import Service
from ringmaster.settings import load_settings

from .pbx import Pbx, new_store, pbx_on, running

#: Debian's package: Playwright never downloads a browser here.
CHROMIUM = "/usr/bin/chromium"
_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
_LOCAL = {"127.0.0.1", "localhost", "::1"}


@asynccontextmanager
async def chromium() -> AsyncIterator[Browser]:
    """A headless chromium, closed on the way out."""
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=_ARGS
        )
        try:
            yield browser
        finally:
            await browser.close()


class Offline:
    """Every request of a page to a host other than this machine's: refused and recorded."""

    def __init__(self) -> None:
        self.refused: list[str] = []

    async def route(self, route: Route) -> None:
        """Let a request to loopback through; abort any other, and remember it."""
        url = route.request.url
        host = urlsplit(url).hostname or ""
        if url.startswith(("data:", "blob:")) or host in _LOCAL:
            await route.continue_()
        else:
            self.refused.append(url)
            await route.abort()


@asynccontextmanager
async def page_of(
    browser: Browser, *, width: int = 1600, height: int = 1000
) -> AsyncIterator[tuple[Page, Offline]]:
    """A page in a fresh context (no stored token), and its record of outside requests."""
    context = await browser.new_context(viewport={"width": width, "height": height})
    offline = Offline()
    await context.route("**/*", offline.route)
    try:
        yield await context.new_page(), offline
    finally:
        await context.close()


SEEN_MS = 10_000  # an upper bound on any wait, never a measured duration
ADMIN_TOKEN = "wallboard-admin-secret"
TENANT_TOKEN = "wallboard-tenant-1-secret"


def daemon(
    mosquitto: MosquittoProcess, prefix: str, db: Path, port: int, **api: Any
) -> AbstractAsyncContextManager[Service]:
    """The daemon in this event loop, its admin API (and the wallboard) on `port`."""
    settings = load_settings(
        None,
        mqtt={"url": mosquitto.url, "topic_prefix": prefix, "client_id": f"ringmaster-{prefix}"},
        database={"path": db},
        api={"enabled": True, "port": port, **api},
    )
    return running(settings)


@asynccontextmanager
async def wallboard(
    browser: Browser, port: int, *, page_clock: bool = False
) -> AsyncIterator[Page]:
    """The wallboard open on the daemon at `port`; no request may leave this machine.

    Args:
        browser: The browser.
        port: The daemon's API port.
        page_clock: Give the page Playwright's clock (``page.clock``), which the test
            moves on; the daemon keeps real time.
    """
    async with page_of(browser) as (page, offline):
        if page_clock:
            await page.clock.install()
        await page.goto(f"http://127.0.0.1:{port}/wallboard")
        yield page
        assert offline.refused == []


@asynccontextmanager
async def pbx_and_wallboard(
    mosquitto: MosquittoProcess, tmp_path: Path, browser: Browser, *, page_clock: bool = False
) -> AsyncIterator[tuple[Pbx, Page, int]]:
    """A PBX, the daemon (queue 1, ringall, DID +100, agent 101) and its wallboard open.

    `page_clock` as `wallboard`'s.

    Yields:
        The PBX, the page, and the port of the daemon's API.
    """
    prefix, db = await new_store(tmp_path, "ringall", agents=1)
    port = free_port()
    async with (
        pbx_on(mosquitto, prefix) as pbx,
        daemon(mosquitto, prefix, db, port),
        wallboard(browser, port, page_clock=page_clock) as page,
    ):
        yield pbx, page, port


def agent_state(page: Page, number: str) -> Locator:
    """Where the wallboard shows the agent's state."""
    return page.locator(f'[data-agent="{number}"] .agent-state')
