"""One tenant's flood of bad payloads: answered within a budget, every one accounted for."""

from __future__ import annotations

import asyncio
import re
import uuid
from pathlib import Path
from typing import Any

import pytest

from ringmaster.daemon.broker import MosquittoProcess

from .pbx import WAIT_S, daemon_in_process, pbx_on, provisioned, write_config

pytestmark = pytest.mark.integration

#: Well past the daemon's budget of answers (`inbox.ERROR_BURST`, refilled per second).
FLOOD = 300
_WITHHELD = re.compile(r"^(\d+) more messages broke the contract")


def reported(errors: list[dict[str, Any]]) -> int:
    """How many rejected messages the errors account for (one each, or a summary's count)."""
    total = 0
    for error in errors:
        summary = _WITHHELD.match(error["error"])
        total += int(summary.group(1)) if summary else 1
    return total


async def test_a_flood_of_bad_payloads_is_summarised_and_delays_no_other_tenant(
    mosquitto: MosquittoProcess, tmp_path: Path
) -> None:
    prefix, db = f"rm{uuid.uuid4().hex[:10]}", tmp_path / "rm.sqlite3"
    await provisioned(db, write_config(tmp_path / "c.toml", "ringall"))
    async with pbx_on(mosquitto, prefix) as pbx, daemon_in_process(mosquitto, prefix, db):
        # Sent faster than the budget refills: some are answered one by one, the rest
        # are counted in summaries.
        await asyncio.gather(
            *(
                pbx.client.publish(f"{prefix}/2/pbx/call/hangup", b"{not json" + bytes(i), qos=1)
                for i in range(FLOOD)
            )
        )
        await pbx.send("agent/state", extension="101", state="available")
        await pbx.send("call/arrived", call_id="c1", did="+100")
        await pbx.expect("cmd/ring", lambda p: p["call_id"] == "c1")
        # The last summary comes ERROR_SUMMARY_S after the first message it counts.
        async with asyncio.timeout(WAIT_S), pbx._changed:
            while reported([s.payload for s in pbx.seen if s.topic == "2/error"]) < FLOOD:
                await pbx._changed.wait()
    errors = [s.payload for s in pbx.seen if s.topic == "2/error"]
    assert reported(errors) == FLOOD
    summaries = [e for e in errors if _WITHHELD.match(e["error"])]
    assert summaries, "every bad payload was answered one by one"
    assert all(e["topic"] == f"{prefix}/2/pbx/call/hangup" for e in summaries)
    assert len(errors) - len(summaries) < FLOOD
