"""`ringmaster status` against a daemon in this process, its calls through a real mosquitto."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from ringmaster.daemon.broker import MosquittoProcess, free_port
from ringmaster.settings import load_settings

from .pbx import (
    daemon_in_process,
    new_prefix,
    new_store,
    pbx_on,
    ringmaster_command,
    running,
)

pytestmark = pytest.mark.integration


async def status(*args: str) -> tuple[int, str, str]:
    """Run ``ringmaster status`` as a process of its own, as an operator would."""
    return await ringmaster_command("status", *args)


async def test_status_shows_the_queue_its_agents_and_callers(
    mosquitto: MosquittoProcess, tmp_path: Path
) -> None:
    prefix, db = await new_store(tmp_path, "ringall", agents=3)
    port = free_port()
    async with (
        pbx_on(mosquitto, prefix) as pbx,
        daemon_in_process(mosquitto, prefix, db, api_port=port),
    ):
        for extension in ("101", "102"):
            await pbx.send("agent/state", extension=extension, state="available")
        await pbx.send("call/arrived", call_id="c1", did="+100", caller_id="5551234")
        await pbx.expect("cmd/ring", lambda p: p["call_id"] == "c1")
        await pbx.send("call/answered", call_id="c1", extension="101")
        await pbx.expect("event/call/answered", lambda p: p["call_id"] == "c1")
        await pbx.send(
            "call/arrived", call_id="c2", did="+100", caller_id="5559876", caller_name="Anna"
        )
        await pbx.expect("cmd/ring", lambda p: p["call_id"] == "c2")

        code, out, err = await status("--api", f"http://127.0.0.1:{port}", "--tenant", "1")

    assert (code, err) == (0, "")
    lines = out.splitlines()
    assert lines[:5] == [
        "600 Q (queue 1, tenant 1): ringall, active",
        lines[1],
        lines[2],
        "  today: offered 2, answered 1, abandoned 0",
        "  since created: offered 2, answered 1, abandoned 0, overflowed 0; SL 100.0%",
    ]
    assert re.fullmatch(r"  1 call waiting, longest wait \d+:\d\d", lines[1])
    # Today is the tenant's day (its time zone is UTC), from the call history's report.
    assert re.fullmatch(
        r"  SL today 100\.0% within 20 s \(1 of 1 answered; \d{4}-\d\d-\d\d, UTC\)", lines[2]
    )
    assert lines[5:7] == ["  Agents:", "    EXT  NAME       STATE       IN STATE"]
    # Since when, from the agent history: 101 since it answered, 102 since it was rung;
    # 103 never changed state, so the history does not say.
    assert re.fullmatch(r"    101  Agent 101  busy        \d+:\d\d", lines[7])
    assert re.fullmatch(r"    102  Agent 102  ringing     \d+:\d\d", lines[8])
    assert lines[9] == "    103  Agent 103  logged_out"
    assert lines[10] == "  Callers:"
    assert re.split(r"\s\s+", lines[11].strip()) == [
        "POS", "CALL", "WAIT", "PRIO", "STATE", "CALLER", "RINGING",
    ]  # fmt: skip
    assert re.fullmatch(r"    1    c2    \d+:\d\d  0     ringing  5559876 \(Anna\)  102", lines[12])
    assert len(lines) == 13


async def test_status_of_another_tenant_lists_no_queue(
    mosquitto: MosquittoProcess, tmp_path: Path
) -> None:
    prefix, db = await new_store(tmp_path, "ringall")
    port = free_port()
    async with daemon_in_process(mosquitto, prefix, db, api_port=port):
        code, out, _ = await status("--api", f"http://127.0.0.1:{port}", "--tenant", "2")
    assert (code, out) == (0, "no queues\n")


async def test_a_refused_token_is_one_clear_line_and_exit_1(
    mosquitto: MosquittoProcess, tmp_path: Path
) -> None:
    _, db = await new_store(tmp_path, "ringall")
    prefix, port = new_prefix(), free_port()
    settings = load_settings(
        None,
        mqtt={"url": mosquitto.url, "topic_prefix": prefix, "client_id": f"ringmaster-{prefix}"},
        database={"path": db},
        api={
            "enabled": True,
            "port": port,
            "admin_tokens": ["s3cret"],
            "tenant_tokens": {1: ["t1-s3cret"]},
        },
    )
    url = f"http://127.0.0.1:{port}"
    async with running(settings):
        refused = await status("--api", url, "--token", "wrong")
        allowed = await status("--api", url, "--token", "s3cret")
        tenant = await status("--api", url, "--token", "t1-s3cret")
    code, out, err = refused
    assert (code, out) == (1, "")
    assert err == (
        f"ringmaster status: {url} refused the token (401: a valid bearer token is required"
        " (Authorization: Bearer <token>)); give one with --token or $RINGMASTER_API_TOKEN\n"
    )
    assert "wrong" not in err
    assert allowed[0] == 0
    assert allowed[1].startswith("600 Q (queue 1, tenant 1): ringall, active\n")
    # A tenant's token reads its own tenant's time zone and today's report.
    assert tenant[0] == 0
    assert tenant[1].splitlines()[2].startswith("  SL today -- within 20 s (no call answered yet; ")
