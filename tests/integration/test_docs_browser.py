"""``/docs`` and ``/redoc`` in a real browser: they render with no request to another host."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from playwright.async_api import Browser, Route, async_playwright

from ringmaster.daemon.broker import MosquittoProcess, free_port

from .pbx import WAIT_S, daemon_in_process, new_store

pytestmark = pytest.mark.integration

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    """Debian's Chromium, headless."""
    async with async_playwright() as playwright:
        chromium = await playwright.chromium.launch(
            executable_path="/usr/bin/chromium", headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield chromium
        finally:
            await chromium.close()


@pytest.mark.parametrize(
    ("page_path", "rendered"),
    [
        ("/docs", ".swagger-ui .info .title"),  # Swagger UI drew the schema's title
        ("/redoc", ".api-info h1"),  # and so did ReDoc
    ],
)
async def test_the_docs_render_from_the_daemon_alone(
    page_path: str,
    rendered: str,
    browser: Browser,
    mosquitto: MosquittoProcess,
    tmp_path: Path,
) -> None:
    prefix, db = await new_store(tmp_path, "ringall")
    port = free_port()
    origin = f"http://127.0.0.1:{port}"
    elsewhere: list[str] = []
    failed: list[str] = []
    console: list[str] = []

    async def only_the_daemon(route: Route) -> None:
        url = route.request.url
        parts = urlsplit(url)
        if parts.scheme in ("data", "blob") or f"{parts.scheme}://{parts.netloc}" == origin:
            await route.continue_()
        else:
            elsewhere.append(url)
            await route.abort()

    async with daemon_in_process(mosquitto, prefix, db, api_port=port):
        page = await browser.new_page()
        await page.route("**/*", only_the_daemon)
        page.on("console", lambda message: console.append(message.text))
        page.on(
            "response",
            lambda response: failed.append(response.url) if response.status >= 400 else None,
        )
        await page.goto(origin + page_path)
        title = page.locator(rendered)
        await title.wait_for(timeout=WAIT_S * 1000)
        text = await title.inner_text()
        await page.close()
    assert "Ringmaster admin API" in text, console
    # Nothing from another host (ReDoc's Redocly logo is refused by the page's policy
    # before any request), and every file of the daemon's was there.
    assert elsewhere == []
    assert failed == []
