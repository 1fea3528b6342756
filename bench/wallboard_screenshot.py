"""``python -m bench.wallboard_screenshot [OUT.png]``: docs/wallboard.png, from a real run.

A private mosquitto, a daemon on a fresh SQLite store (three queues, eight agents),
a scripted PBX that plays a morning's calls through the broker and leaves calls
waiting, agents talking, paused and in wrap-up; then the wallboard in Debian's
chromium at 1920x1080, screenshot taken once the oldest call has waited past its
queue's service level. About 40 s; nothing leaves the machine.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
from functools import partial
from pathlib import Path
from typing import Any

from playwright.async_api import expect
from tests.integration.browser import chromium, page_of
from tests.integration.pbx import Pbx, daemon_in_process, new_prefix, pbx_on, provisioned

from ringmaster.daemon.broker import free_port, start_mosquitto

CENTRE = """
[[tenant]]
id = 1
name = "Acme Support"
timezone = "Europe/Paris"

{extensions}

[[queue]]
tenant_id = 1
queue_number = "600"
name = "Sales"
strategy = "ringall"
timeout = 60
service_level = 20
agents = ["101", "102", "103", "104"]

[[queue]]
tenant_id = 1
queue_number = "610"
name = "Support"
strategy = "leastrecent"
timeout = 60
service_level = 30
agents = ["104", {{extension = "105", wrapup_time = 45}}, "106", "107"]

[[queue]]
tenant_id = 1
queue_number = "620"
name = "Billing"
strategy = "ringall"
timeout = 60
service_level = 60
agents = ["107", "108"]

[[did_route]]
tenant_id = 1
did = "+33100000600"
queue = "600"

[[did_route]]
tenant_id = 1
did = "+33100000610"
queue = "610"

[[did_route]]
tenant_id = 1
did = "+33100000620"
queue = "620"
"""

AGENTS = {
    "101": "Alice Martin",
    "102": "Bruno Keller",
    "103": "Chloé Dubois",
    "104": "David Osei",
    "105": "Emma Rossi",
    "106": "Farid Haddad",
    "107": "Grace Liu",
    "108": "Hugo Berg",
}
SALES, SUPPORT, BILLING = "+33100000600", "+33100000610", "+33100000620"
#: How long the oldest Sales call has waited when the picture is taken: past its 20 s.
OLDEST_WAIT_S = 26.0


def _is(key: str, value: str, payload: dict[str, Any]) -> bool:
    return bool(payload[key] == value)


class Centre:
    """The scripted PBX: calls by number, so that each is answered by whom it rang."""

    def __init__(self, pbx: Pbx) -> None:
        self.pbx = pbx
        self.calls = 0

    async def agent(self, extension: str, state: str, reason: str = "") -> None:
        """The agent's presence, as the PBX says it; returns once ringmaster published it."""
        mark = self.pbx.mark()
        await self.pbx.send("agent/state", extension=extension, state=state, reason=reason)
        await self.pbx.expect("event/agent/state", partial(_is, "extension", extension), after=mark)

    async def arrive(self, did: str, caller: str, number: str) -> str:
        """A new call on `did`; returns its id once it is queued."""
        self.calls += 1
        call = f"call-{self.calls}"
        await self.pbx.send(
            "call/arrived", call_id=call, did=did, caller_id=number, caller_name=caller
        )
        await self.pbx.expect("event/call/queued", partial(_is, "call_id", call))
        return call

    async def answered(self, call: str) -> str:
        """Answered by the first extension rung for it; returns that extension."""
        ring = await self.pbx.expect("cmd/ring", partial(_is, "call_id", call))
        await self.pbx.send("call/answered", call_id=call, extension=ring["extension"])
        await self.pbx.expect("event/call/answered", partial(_is, "call_id", call))
        return str(ring["extension"])

    async def hangup(self, call: str, event: str = "completed") -> None:
        """The caller hangs up; returns once ringmaster published `event` for it."""
        await self.pbx.send("call/hangup", call_id=call)
        await self.pbx.expect(f"event/call/{event}", partial(_is, "call_id", call))


async def _morning(centre: Centre) -> None:
    """Calls answered and abandoned earlier today, for today's figures."""
    for extension in ("101", "102", "106", "107"):
        await centre.agent(extension, "available")
    for did, answered, abandoned in ((SALES, 7, 1), (SUPPORT, 5, 1), (BILLING, 3, 0)):
        for n in range(answered):
            call = await centre.arrive(did, f"Caller {n}", f"+3361234{n:04d}")
            await centre.answered(call)
            await centre.hangup(call)
        for n in range(abandoned):
            call = await centre.arrive(did, "Gone", f"+3369876{n:04d}")
            await centre.hangup(call, "abandoned")


async def _now(centre: Centre) -> None:
    """The centre as the picture shows it."""
    for extension, state, reason in (
        ("103", "paused", "lunch"),
        ("104", "paused", "training"),
        ("106", "paused", "admin"),
        ("107", "paused", "admin"),
        ("105", "available", ""),
    ):
        await centre.agent(extension, state, reason)
    # Emma (105, alone free in Support) just finished a call: in wrap-up.
    emma = await centre.arrive(SUPPORT, "Done", "+33633330000")
    await centre.answered(emma)
    await centre.hangup(emma)
    for extension in ("106", "107"):
        await centre.agent(extension, "available")
    # Alice and Bruno talk to Sales callers; Farid or Grace to a Support caller.
    for _ in range(2):
        await centre.answered(await centre.arrive(SALES, "Talking", "+33611110000"))
    await centre.answered(await centre.arrive(SUPPORT, "Talking", "+33622220000"))
    # Nobody free in Sales: these wait.
    await centre.arrive(SALES, "Marie Lefèvre", "+33612345678")
    await asyncio.sleep(OLDEST_WAIT_S - 12)
    await centre.arrive(SALES, "Jonas Weber", "+4915112345678")
    await asyncio.sleep(4)
    await centre.arrive(SALES, "", "+33698765432")
    # The other of Farid and Grace rings for a Support caller; Billing's waits.
    paolo = await centre.arrive(SUPPORT, "Paolo Conti", "+393331234567")
    await centre.pbx.expect("cmd/ring", partial(_is, "call_id", paolo))
    await asyncio.sleep(3)
    await centre.arrive(BILLING, "Sofia Lind", "+46701234567")


async def main(out: Path) -> None:
    """Play the run and write the screenshot to `out`."""
    with tempfile.TemporaryDirectory() as folder:
        tmp = Path(folder)
        broker = start_mosquitto(tmp / "mosquitto")
        try:
            extensions = "\n".join(
                f'[[extension]]\ntenant_id = 1\nnumber = "{n}"\nname = "{name}"\n'
                for n, name in AGENTS.items()
            )
            config = tmp / "centre.toml"
            config.write_text(CENTRE.format(extensions=extensions))
            prefix, db, port = new_prefix(), tmp / "rm.sqlite3", free_port()
            await provisioned(db, config)
            async with (
                pbx_on(broker, prefix) as pbx,
                daemon_in_process(broker, prefix, db, api_port=port),
                chromium() as browser,
                page_of(browser, width=1920, height=1080) as (page, offline),
            ):
                centre = Centre(pbx)
                await _morning(centre)
                await page.goto(f"http://127.0.0.1:{port}/wallboard")
                await expect(page.locator("#connection")).to_have_text("live")
                await _now(centre)
                await expect(page.locator('[data-queue="1"] .q-waiting')).to_have_text("3")
                await expect(page.locator('[data-queue="1"] .q-longest.red')).to_be_visible()
                await page.mouse.move(0, 0)
                await page.screenshot(path=str(out))
                assert offline.refused == [], offline.refused
        finally:
            broker.close()
    print(out)


if __name__ == "__main__":
    asyncio.run(main(Path(sys.argv[1] if len(sys.argv) > 1 else "docs/wallboard.png").resolve()))
