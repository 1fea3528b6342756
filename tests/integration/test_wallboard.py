"""The wallboard in a real chromium, against a real daemon and mosquitto: as a supervisor sees it.

Every request the page makes to a host other than this machine's fails the test.
Waits are Playwright's own (it retries an expectation until it holds, or the
generous timeout): no sleeps.
"""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from playwright.async_api import Browser, expect

from ringmaster.daemon.broker import MosquittoProcess, free_port

from .browser import (
    ADMIN_TOKEN,
    SEEN_MS,
    TENANT_TOKEN,
    agent_state,
    daemon,
    page_of,
    pbx_and_wallboard,
    wallboard,
)
from .pbx import new_store, pbx_on

pytestmark = pytest.mark.integration


async def test_a_call_waits_rings_and_is_answered_on_the_wallboard(
    mosquitto: MosquittoProcess, tmp_path: Path, browser: Browser
) -> None:
    async with pbx_and_wallboard(mosquitto, tmp_path, browser) as (pbx, page, _):
        queue = page.locator('[data-queue="1"]')
        await expect(page.locator("#connection")).to_have_text("live", timeout=SEEN_MS)
        await expect(queue.locator(".q-waiting")).to_have_text("0", timeout=SEEN_MS)
        await expect(page.locator("#sign-in")).to_be_hidden()
        await expect(agent_state(page, "101")).to_have_text("logged out", timeout=SEEN_MS)

        await pbx.send("call/arrived", call_id="c1", did="+100", caller_name="Ann Caller")
        call = page.locator('[data-call="c1"]')
        await expect(call.locator(".call-state")).to_have_text("queued", timeout=SEEN_MS)
        await expect(call.locator(".caller")).to_have_text("Ann Caller")
        await expect(queue.locator(".q-waiting")).to_have_text("1")

        await pbx.send("agent/state", extension="101", state="available")
        await expect(call.locator(".call-state")).to_have_text("ringing 101", timeout=SEEN_MS)
        await expect(agent_state(page, "101")).to_have_text("ringing")

        await pbx.send("call/answered", call_id="c1", extension="101")
        await expect(agent_state(page, "101")).to_have_text("busy", timeout=SEEN_MS)
        await expect(call).to_have_count(0)
        await expect(queue.locator(".q-waiting")).to_have_text("0")
        # Today's figures, from the interval report, count it too.
        await expect(queue.locator(".q-answered")).to_have_text("1", timeout=SEEN_MS)


async def test_the_wallboard_signs_in_with_a_token(
    mosquitto: MosquittoProcess, tmp_path: Path, browser: Browser
) -> None:
    prefix, db = await new_store(tmp_path, "ringall", agents=1)
    port = free_port()
    tokens = {"admin_tokens": [ADMIN_TOKEN], "tenant_tokens": {1: [TENANT_TOKEN]}}
    async with (
        daemon(mosquitto, prefix, db, port, **tokens),
        httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{port}",
            headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
        ) as api,
        wallboard(browser, port) as page,
    ):
        made = await api.post("/api/tenants", json={"id": 2, "name": "Second"})
        assert made.status_code == 201, made.text
        # Without a token the API refuses: the page asks for one.
        await expect(page.locator("#sign-in")).to_be_visible(timeout=SEEN_MS)
        await page.fill("#token", "not-the-token")
        await page.click("#sign-in button[type=submit]")
        await expect(page.locator("#sign-in-error")).to_contain_text("refused", timeout=SEEN_MS)

        # An admin picks the tenant.
        await page.fill("#token", ADMIN_TOKEN)
        await page.click("#sign-in button[type=submit]")
        await expect(page.locator("#connection")).to_have_text("live", timeout=SEEN_MS)
        await expect(page.locator('[data-queue="1"] .q-waiting')).to_have_text("0")
        await expect(page.locator("#tenant-name")).to_have_text("Test")
        await expect(page.locator("#tenant-select option")).to_have_count(2)
        await page.select_option("#tenant-select", "2")
        await expect(page.locator("#tenant-name")).to_have_text("Second", timeout=SEEN_MS)
        await expect(page.locator('[data-queue="1"]')).to_have_count(0)

        # Kept for the next visit, until signed out.
        await page.reload()
        await expect(page.locator("#tenant-name")).to_have_text("Second", timeout=SEEN_MS)
        await page.click("#sign-out")
        await expect(page.locator("#sign-in")).to_be_visible()
        await page.reload()
        await expect(page.locator("#sign-in")).to_be_visible(timeout=SEEN_MS)

        # A tenant's token shows its own tenant, and no picker.
        await page.fill("#token", TENANT_TOKEN)
        await page.click("#sign-in button[type=submit]")
        await expect(page.locator("#tenant-name")).to_have_text("Test", timeout=SEEN_MS)
        await expect(page.locator('[data-queue="1"] .q-waiting')).to_have_text("0")
        await expect(page.locator("#tenant-picker")).to_be_hidden()


async def test_the_wallboard_comes_back_live_after_a_daemon_restart(
    mosquitto: MosquittoProcess, tmp_path: Path, browser: Browser
) -> None:
    prefix, db = await new_store(tmp_path, "ringall", agents=1)
    port = free_port()
    async with pbx_on(mosquitto, prefix) as pbx, page_of(browser) as (page, offline):
        connection = page.locator("#connection")
        async with daemon(mosquitto, prefix, db, port):
            await page.goto(f"http://127.0.0.1:{port}/wallboard")
            await expect(connection).to_have_text("live", timeout=SEEN_MS)
        # The daemon is down: the page says so, and keeps trying.
        await expect(connection).to_have_attribute("data-state", "reconnecting", timeout=SEEN_MS)
        async with daemon(mosquitto, prefix, db, port):
            await expect(connection).to_have_text("live", timeout=SEEN_MS)
            await pbx.send("call/arrived", call_id="after", did="+100")
            await expect(page.locator('[data-call="after"] .call-state')).to_have_text(
                "queued", timeout=SEEN_MS
            )
        assert offline.refused == []
