"""`ringmaster provision FILE` against a running daemon: the file is in effect at once."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from ringmaster.daemon.broker import MosquittoProcess, free_port

from .pbx import (
    DEMO,
    daemon_in_process,
    new_prefix,
    pbx_on,
    provisioned,
    ringmaster_command,
)

pytestmark = pytest.mark.integration

EXTENSIONS = (
    '[[extension]]\ntenant_id = 1\nnumber = "101"\n\n[[extension]]\ntenant_id = 1\nnumber = "102"\n'
)


def config(agents: str) -> str:
    """The test's tenant: extensions 101 and 102, queue 600 with `agents` enrolled."""
    return DEMO.format(
        extensions=EXTENSIONS, strategy="ringall", timeout=15, retry=5, agents=agents
    )


async def provision(*args: str, db: Path) -> tuple[int, str, str]:
    """Run ``ringmaster provision`` as a process of its own, as an operator would."""
    return await ringmaster_command(
        "provision",
        *args,
        # Were the daemon not to answer, the file would be written here: the test sees it.
        env={
            **os.environ,
            "RINGMASTER_DATABASE__PATH": str(db),
            "RINGMASTER_LOG__LEVEL": "warning",
        },
    )


async def test_provision_enrols_an_agent_who_is_rung_at_once(
    mosquitto: MosquittoProcess, tmp_path: Path
) -> None:
    prefix, db = new_prefix(), tmp_path / "rm.sqlite3"
    (tmp_path / "first.toml").write_text(config('"101"'))
    await provisioned(db, tmp_path / "first.toml")  # 101 enrolled, never logged in
    more = tmp_path / "more.toml"
    more.write_text(config('"101", "102"'))
    bad = tmp_path / "bad.toml"
    bad.write_text(config('"101", "102", "103"'))
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    other_db = tmp_path / "not-this.sqlite3"
    async with (
        pbx_on(mosquitto, prefix) as pbx,
        daemon_in_process(mosquitto, prefix, db, api_port=port),
    ):
        await pbx.send("agent/state", extension="102", state="available")  # in no queue yet
        await pbx.send("call/arrived", call_id="c1", did="+100", caller_id="5551234")
        await pbx.expect("event/call/queued", lambda p: p["call_id"] == "c1")
        mark = pbx.mark()
        assert pbx.count("cmd/ring") == 0  # nobody to ring: 101 is logged out

        code, out, err = await provision(str(more), "--api", url, db=other_db)
        assert (code, err) == (0, "")
        # Rung without a restart: the daemon applied the file before answering.
        await pbx.expect(
            "cmd/ring", lambda p: p["call_id"] == "c1" and p["extension"] == "102", after=mark
        )

        refused = await provision(str(bad), "--api", url, db=other_db)

    assert out.splitlines() == [
        "tenants: 0 created, 0 updated, 1 unchanged",
        "extensions: 0 created, 0 updated, 2 unchanged",
        "queues: 0 created, 0 updated, 1 unchanged",
        "enrolments: 0 created, 1 updated, 0 unchanged",
        "did_routes: 0 created, 0 updated, 1 unchanged",
        f"applied by the running daemon at {url}: in effect now",
    ]
    # An invalid file: the daemon's lines, naming the file as offline; no fall-back.
    assert refused == (
        1,
        "",
        f'{bad}: queue[1].agents[3]: No extension "103" in tenant 1; references stay within'
        ' a tenant (entry: tenant 1, queue_number "600")\n',
    )
    assert not other_db.exists()
