"""The supervisor's controls on the wallboard, in a real chromium: the PBX sees the commands.

The page asks, the PBX applies and confirms over MQTT as usual, and only then does
the board show the change (docs/mqtt.md, ``cmd/agent_state``).
"""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from playwright.async_api import Browser, expect

from ringmaster.daemon.broker import MosquittoProcess

from .browser import SEEN_MS, agent_state, pbx_and_wallboard

pytestmark = pytest.mark.integration


async def test_a_pause_from_the_wallboard_reaches_the_pbx_and_shows_once_confirmed(
    mosquitto: MosquittoProcess, tmp_path: Path, browser: Browser
) -> None:
    async with pbx_and_wallboard(mosquitto, tmp_path, browser) as (pbx, page, _):
        await pbx.send("agent/state", extension="101", state="available")
        await expect(agent_state(page, "101")).to_have_text("available", timeout=SEEN_MS)
        row = page.locator('[data-agent="101"]')

        await row.get_by_role("button", name="Pause").click()
        await page.select_option("#pause-reason", "lunch")
        await page.click("#action-ok")
        # Asked, not done: the PBX has the last word on presence.
        await expect(row.locator(".pending")).to_have_text("pause requested", timeout=SEEN_MS)
        await expect(agent_state(page, "101")).to_have_text("available")
        asked = await pbx.expect("cmd/agent_state", lambda p: p["state"] == "paused")
        assert (asked["extension"], asked["reason"]) == ("101", "lunch")

        await pbx.send("agent/state", extension="101", state="paused", reason="lunch")
        await expect(agent_state(page, "101")).to_have_text("paused", timeout=SEEN_MS)
        await expect(row.locator(".reason")).to_have_text("lunch")
        await expect(row.locator(".pending")).to_have_count(0)

        await row.get_by_role("button", name="Unpause").click()
        await expect(row.locator(".pending")).to_have_text("unpause requested", timeout=SEEN_MS)
        await pbx.expect(
            "cmd/agent_state", lambda p: p["extension"] == "101" and p["state"] == "available"
        )
        await pbx.send("agent/state", extension="101", state="available")
        await expect(agent_state(page, "101")).to_have_text("available", timeout=SEEN_MS)
        await expect(row.locator(".pending")).to_have_count(0)


async def test_a_pause_the_pbx_never_confirms_says_so_after_half_a_minute(
    mosquitto: MosquittoProcess, tmp_path: Path, browser: Browser
) -> None:
    async with pbx_and_wallboard(mosquitto, tmp_path, browser, page_clock=True) as (pbx, page, _):
        await pbx.send("agent/state", extension="101", state="available")
        await expect(agent_state(page, "101")).to_have_text("available", timeout=SEEN_MS)
        row = page.locator('[data-agent="101"]')
        await row.get_by_role("button", name="Pause").click()
        await page.select_option("#pause-reason", "lunch")
        await page.click("#action-ok")
        await expect(row.locator(".pending")).to_have_text("pause requested", timeout=SEEN_MS)
        await pbx.expect("cmd/agent_state", lambda p: p["state"] == "paused")

        # The PBX says nothing (it does not know the agent, say): the supervisor is told.
        await page.clock.fast_forward(29_000)
        await expect(row.locator(".pending")).to_have_text("pause requested")
        await page.clock.fast_forward(2_000)
        await expect(row.locator(".pending.unconfirmed")).to_have_text(
            "pause not confirmed by the PBX", timeout=SEEN_MS
        )
        await expect(agent_state(page, "101")).to_have_text("available")

        # A late confirmation still settles it.
        await pbx.send("agent/state", extension="101", state="paused", reason="lunch")
        await expect(agent_state(page, "101")).to_have_text("paused", timeout=SEEN_MS)
        await expect(row.locator(".pending")).to_have_count(0)


async def test_a_waiting_call_is_moved_sent_and_hung_up_from_the_wallboard(
    mosquitto: MosquittoProcess, tmp_path: Path, browser: Browser
) -> None:
    async with (
        pbx_and_wallboard(mosquitto, tmp_path, browser) as (pbx, page, port),
        httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as api,
    ):
        made = await api.post(
            "/api/queues",
            json={
                "tenant_id": 1,
                "queue_number": "700",
                "name": "Support",
                "strategy": "ringall",
                "timeout": 15,
                "status": "active",
            },
        )
        assert made.status_code == 201, made.text
        second = made.json()["id"]
        await expect(page.locator(f'[data-queue="{second}"]')).to_be_visible(timeout=SEEN_MS)
        await pbx.send("call/arrived", call_id="c1", did="+100", caller_name="Ann")
        await pbx.send("call/arrived", call_id="c2", did="+100", caller_name="Bob")
        first = page.locator('[data-queue="1"]')
        await expect(first.locator('[data-call="c2"]')).to_be_visible(timeout=SEEN_MS)

        # Moved: the call now waits in the other queue.
        await first.locator('[data-call="c1"]').get_by_role("button", name="Move").click()
        await page.select_option("#move-queue", str(second))
        await page.click("#action-ok")
        moved = page.locator(f'[data-queue="{second}"] [data-call="c1"]')
        await expect(moved).to_be_visible(timeout=SEEN_MS)

        # A mistake is answered readably, in the dialog, and changes nothing.
        await moved.get_by_role("button", name="Send").click()
        await page.fill("#send-extension", "999")
        await page.click("#action-ok")
        await expect(page.locator("#action-error")).to_contain_text("999", timeout=SEEN_MS)
        await page.click("#action-cancel")
        await expect(moved).to_be_visible()

        await moved.get_by_role("button", name="Send").click()
        await page.fill("#send-extension", "101")
        await page.click("#action-ok")
        routed = await pbx.expect("cmd/route", lambda p: p["call_id"] == "c1")
        assert routed["target"] == {"type": "extension", "extension": "101"}
        await expect(moved).to_have_count(0, timeout=SEEN_MS)

        # Hung up, once confirmed.
        await first.locator('[data-call="c2"]').get_by_role("button", name="Hang up").click()
        await expect(page.locator("#action-title")).to_contain_text("Hang up Bob?")
        await page.click("#action-ok")
        await expect(first.locator('[data-call="c2"]')).to_have_count(0, timeout=SEEN_MS)
        await expect(first.locator(".q-waiting")).to_have_text("0")
