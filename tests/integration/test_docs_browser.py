"""``/docs`` and ``/redoc`` in a real browser: they render with no request to another host."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.async_api import Browser

from ringmaster.daemon.broker import MosquittoProcess, free_port

from .browser import page_of
from .pbx import WAIT_S, daemon_in_process, new_store

pytestmark = pytest.mark.integration


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
    failed: list[str] = []
    console: list[str] = []
    async with (
        daemon_in_process(mosquitto, prefix, db, api_port=port),
        page_of(browser) as (page, offline),
    ):
        page.on("console", lambda message: console.append(message.text))
        page.on(
            "response",
            lambda response: failed.append(response.url) if response.status >= 400 else None,
        )
        await page.goto(f"http://127.0.0.1:{port}{page_path}")
        title = page.locator(rendered)
        await title.wait_for(timeout=WAIT_S * 1000)
        text = await title.inner_text()
    assert "Ringmaster admin API" in text, console
    # Nothing from another host (ReDoc's Redocly logo is refused by the page's policy
    # before any request), and every file of the daemon's was there.
    assert offline.refused == []
    assert failed == []
