"""``ringmaster run --workers 2`` on the private PostgreSQL and a real mosquitto.

Two worker processes, nodes ``w-0`` and ``w-1``, share the shards; each rings calls
for the tenants of its shards; a worker killed with SIGKILL is started again and gets
its shards back; SIGTERM to the parent stops every worker.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from ringmaster.api.provisioning import provision
from ringmaster.daemon.broker import MosquittoProcess, free_port
from ringmaster.store import Store

from .pbx import Pbx, listening, new_prefix

pytestmark = pytest.mark.integration

SHARDS = 4
TENANTS = range(1, 9)
TOKEN = "workers-admin-secret"
WAIT_S = 60.0  # an upper bound on any wait (two interpreters starting on a busy machine)


def _config(path: Path) -> Path:
    """Tenants 1 to 8, each with agent 101 in queue 600 behind DID +100."""
    path.write_text(
        "".join(
            f'[[tenant]]\nid = {t}\nname = "T{t}"\n\n'
            f'[[extension]]\ntenant_id = {t}\nnumber = "101"\n\n'
            f'[[queue]]\ntenant_id = {t}\nqueue_number = "600"\nname = "Q"\n'
            f'strategy = "ringall"\ntimeout = 60\nagents = ["101"]\n\n'
            f'[[did_route]]\ntenant_id = {t}\ndid = "+100"\nqueue = "600"\n\n'
            for t in TENANTS
        )
    )
    return path


def _two_free_ports() -> int:
    """A port p with p + 1 free too (the workers' APIs)."""
    while True:
        port = free_port()
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port + 1))
            except OSError:
                continue
        return port


def _cluster(port: int) -> dict[str, Any] | None:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/api/cluster", headers={"Authorization": f"Bearer {TOKEN}"}
    )
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            answer: dict[str, Any] = json.load(response)
            return answer
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return None  # not listening yet


def _holders(cluster: dict[str, Any]) -> dict[str, list[int]]:
    """Node -> the shards it holds."""
    held: dict[str, list[int]] = {}
    for shard in cluster["shard_list"]:
        if shard["holder"] is not None:
            held.setdefault(shard["holder"], []).append(shard["shard"])
    return held


def _spread(port: int) -> dict[str, Any] | None:
    """The cluster once w-0 and w-1 hold every shard, two each; else None."""
    cluster = _cluster(port)
    if cluster is None:
        return None
    held = _holders(cluster)
    if sorted(held) != ["w-0", "w-1"] or sorted(map(len, held.values())) != [2, 2]:
        return None
    return cluster


def _taken_again(
    port: int, node: str, placed: list[int], epochs: dict[int, int]
) -> dict[str, Any] | None:
    """The cluster once `node` holds exactly the shards `placed`, each under a newer epoch.

    Not merely the first even spread: a worker starved past its lease on a busy machine
    may lose a shard for a moment, and the two nodes then hold two each, but not their
    own, until the placement is restored (it always is: it depends on the live nodes only).
    """
    cluster = _spread(port)
    if cluster is None:
        return None
    mine = [s for s in cluster["shard_list"] if s["holder"] == node]
    if sorted(s["shard"] for s in mine) != sorted(placed):
        return None
    return cluster if all(s["epoch"] > epochs[s["shard"]] for s in mine) else None


async def _until(found: Callable[[], Any], what: str, parent: subprocess.Popen[bytes]) -> Any:
    try:
        async with asyncio.timeout(WAIT_S):
            while (value := await asyncio.to_thread(found)) is None:
                exited = parent.poll()
                assert exited is None, f"the parent exited ({exited}) before {what}"
                await asyncio.sleep(0.1)
    except TimeoutError:
        pytest.fail(f"not within {WAIT_S:.0f} s: {what}")
    return value


def _workers_of(parent: int) -> dict[str, int]:
    """The parent's children: node name -> pid (from each one's environment)."""
    found = {}
    children = Path(f"/proc/{parent}/task/{parent}/children").read_text().split()
    for pid in map(int, children):
        try:
            environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        except OSError:
            continue  # it just ended
        for entry in environ:
            if entry.startswith(b"RINGMASTER_CLUSTER__NODE="):
                found[entry.split(b"=", 1)[1].decode()] = pid
    return found


def _restarted(parent: int, node: str, old: int) -> dict[str, int] | None:
    """The parent's workers once `node` runs in a process other than `old`."""
    workers = _workers_of(parent)
    return workers if workers.get(node, old) != old else None


def _run_workers(env: dict[str, str], folder: Path) -> subprocess.Popen[bytes]:
    """``ringmaster run --workers 2``, logging to ``workers.log`` in `folder`."""
    with (folder / "workers.log").open("ab") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "ringmaster", "run", "--workers", "2"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=folder,
        )


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


async def _rung(broker: MosquittoProcess, prefix: str, tenant: int) -> dict[str, Any]:
    """A call to `tenant` (its agent available first): the `cmd/ring` its holder sends."""
    topics = [f"{prefix}/{tenant}/cmd/#", f"{prefix}/{tenant}/event/#"]
    async with listening(broker, lambda client: Pbx(client, prefix, tenant), topics) as pbx:
        await pbx.send("agent/state", extension="101", state="available")
        await pbx.expect("event/agent/state", lambda p: p["state"] == "available")
        await pbx.send("call/arrived", call_id=f"c{tenant}", did="+100")
        return await pbx.expect("cmd/ring", lambda p: p["call_id"] == f"c{tenant}")


async def test_two_workers_share_the_shards_come_back_and_stop_together(
    mosquitto: MosquittoProcess, tmp_path: Path, postgres_url: str
) -> None:
    async with await Store.open(postgres_url) as store:
        await provision(_config(tmp_path / "tenants.toml"), store)
    prefix, port = new_prefix(), _two_free_ports()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("RINGMASTER_")},
        "RINGMASTER_DATABASE__URL": postgres_url,
        "RINGMASTER_CLUSTER__SHARDS": str(SHARDS),
        "RINGMASTER_CLUSTER__NODE": "w",
        "RINGMASTER_MQTT__URL": mosquitto.url,
        "RINGMASTER_MQTT__TOPIC_PREFIX": prefix,
        "RINGMASTER_MQTT__CLIENT_ID": f"ringmaster-{prefix}",
        "RINGMASTER_API__PORT": str(port),
        "RINGMASTER_API__ADMIN_TOKENS": json.dumps([TOKEN]),
        "RINGMASTER_LOG__FORMAT": "json",
    }
    parent = _run_workers(env, tmp_path)
    try:
        cluster = await _until(lambda: _spread(port), "the shards spread", parent)
        assert cluster["node"] == "w-0"  # worker 0 answers on api.port
        assert {n["node"]: n["alive"] for n in cluster["nodes"]} == {"w-0": True, "w-1": True}
        other = await _until(lambda: _cluster(port + 1), "worker 1's API", parent)
        assert other["node"] == "w-1"  # worker 1 answers on api.port + 1
        held = _holders(cluster)
        tenants_of = {s["shard"]: s["tenants"] for s in cluster["shard_list"]}
        for node in ("w-0", "w-1"):  # each node rings for a tenant of its shards
            tenant = next(t for shard in held[node] for t in tenants_of[shard])
            assert (await _rung(mosquitto, prefix, tenant))["extension"] == "101"

        workers = _workers_of(parent.pid)
        assert sorted(workers) == ["w-0", "w-1"]
        os.kill(workers["w-1"], signal.SIGKILL)
        back = await _until(
            lambda: _restarted(parent.pid, "w-1", workers["w-1"]), "w-1 started again", parent
        )
        assert back["w-0"] == workers["w-0"]  # left alone
        # Its shards again, under new epochs: the dead process's leases are no longer it.
        epochs = {s["shard"]: s["epoch"] for s in cluster["shard_list"]}
        # The same shards, as placement says.
        await _until(
            lambda: _taken_again(port, "w-1", held["w-1"], epochs), "w-1's shards again", parent
        )

        parent.send_signal(signal.SIGTERM)
        assert await asyncio.to_thread(parent.wait, WAIT_S) == 0
        assert all(_gone(pid) for pid in back.values())
    finally:
        if parent.poll() is None:
            parent.kill()  # its workers get SIGTERM from the kernel (PR_SET_PDEATHSIG)
            parent.wait()
        # Shown with a failure: what the workers warned of (a lapsed lease, a slow statement).
        for line in (tmp_path / "workers.log").read_text().splitlines():
            if '"level": "warning"' in line or '"level": "error"' in line:
                print(line)
    log_lines = (tmp_path / "workers.log").read_text().splitlines()
    events = [json.loads(line) for line in log_lines if line.startswith("{")]
    assert [e["node"] for e in events if e["event"] == "worker.died"] == ["w-1"]
    stopped = {e["node"]: e["status"] for e in events if e["event"] == "worker.stopped"}
    assert stopped == {"w-0": 0, "w-1": 0}  # each stopped cleanly, none killed
