"""Cluster nodes in this event loop, on the private PostgreSQL and a real mosquitto.

The quick checks of the node's wiring: shards taken and spread, a call rung by the
holder of its tenant's shard, a hand-back with the call's ring carried over, a
configuration change through the store applied by the holder. The processes,
`kill -9` under load and the measured takeover are in test_cluster_failover.py.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import asyncpg
import httpx
import pytest
from prometheus_client import generate_latest

from ringmaster.api.provisioning import provision
from ringmaster.cluster.shards import shard_of
from ringmaster.daemon.broker import MosquittoProcess, free_port
from ringmaster.daemon.cluster_node import ClusterNode
from ringmaster.engine.model import QueueConfig, QueueId, QueueTarget, TenantId
from ringmaster.settings import load_settings
from ringmaster.store import Store

from .pbx import WAIT_S, new_prefix, pbx_on, write_config

pytestmark = pytest.mark.integration

SHARDS = 4


@asynccontextmanager
async def cluster_node(
    broker: MosquittoProcess, prefix: str, url: str, node: str, *, api_port: int | None = None
) -> AsyncIterator[ClusterNode]:
    """A node in this event loop, joined; with `api_port`, its admin API listens there."""
    api = {"enabled": False} if api_port is None else {"enabled": True, "port": api_port}
    settings = load_settings(
        None,
        mqtt={"url": broker.url, "topic_prefix": prefix, "client_id": f"rm-{prefix}"},
        database={"url": url},
        api=api,
        cluster={"shards": SHARDS, "node": node},
    )
    member = ClusterNode(settings)
    task = asyncio.create_task(member.run())
    try:
        async with asyncio.timeout(WAIT_S):
            ready = asyncio.create_task(member.ready.wait())
            await asyncio.wait({ready, task}, return_when=asyncio.FIRST_COMPLETED)
            if task.done():
                task.result()
        yield member
    finally:
        member.stop()
        async with asyncio.timeout(WAIT_S):
            await task


async def until(condition: Callable[[], bool]) -> None:
    """Wait (bounded, polling the nodes' own state) until `condition` holds."""
    async with asyncio.timeout(WAIT_S):
        while not condition():  # noqa: ASYNC110 - the nodes signal nothing to wait on
            await asyncio.sleep(0.02)


async def test_two_nodes_spread_the_shards_and_hand_a_ringing_call_over(
    mosquitto: MosquittoProcess, tmp_path: Path, postgres_url: str
) -> None:
    prefix = new_prefix()
    async with await Store.open(postgres_url) as store:
        await provision(write_config(tmp_path / "c.toml", "ringall", timeout=60), store)
    home = shard_of(TenantId(1), SHARDS)
    async with (
        pbx_on(mosquitto, prefix) as pbx,
        cluster_node(mosquitto, prefix, postgres_url, "a") as a,
    ):
        await until(lambda: sorted(a.held) == list(range(SHARDS)))
        await until(lambda: not a.not_ready())
        await pbx.send("agent/state", extension="101", state="available")
        await pbx.send("call/arrived", call_id="c1", did="+100")
        ring = await pbx.expect("cmd/ring", lambda p: p["call_id"] == "c1")
        # The node's /metrics merges its shards', each series with its shard.
        scraped = generate_latest(a.metrics.registry).decode()
        assert (
            f'ringmaster_calls_offered_total{{queue="1",shard="{home}",tenant="1"}} 1.0' in scraped
        )
        cpu = [line for line in scraped.splitlines() if line.startswith("process_cpu_seconds")]
        assert len(cpu) == 1  # the process's, once: not once per shard

        async with cluster_node(mosquitto, prefix, postgres_url, "b") as b:
            await until(lambda: len(a.held) == len(b.held) == SHARDS // 2)
            assert set(a.held) | set(b.held) == set(range(SHARDS))
            holder = a if home in a.held else b
            assert holder.engine_for(TenantId(1)) is not None
            other = b if holder is a else a
            assert other.engine_for(TenantId(1)) is None

            # The ring outlives whichever hand-backs happened: answered in time, it is taken.
            await pbx.send("call/answered", call_id="c1", extension="101", ring_id=ring["ring_id"])
            await pbx.expect("event/call/answered", lambda p: p["call_id"] == "c1")
            await pbx.send("call/hangup", call_id="c1")
            await pbx.expect("event/call/completed", lambda p: p["call_id"] == "c1")

        # b left cleanly: a holds every shard again.
        await until(lambda: sorted(a.held) == list(range(SHARDS)))
        await pbx.send("call/arrived", call_id="c2", did="+100")
        await pbx.expect("cmd/ring", lambda p: p["call_id"] == "c2")


async def test_a_queue_added_through_the_store_is_rung_by_the_holder(
    mosquitto: MosquittoProcess, tmp_path: Path, postgres_url: str
) -> None:
    prefix = new_prefix()
    async with await Store.open(postgres_url) as store:
        await provision(write_config(tmp_path / "c.toml", "ringall", timeout=60), store)
        async with (
            pbx_on(mosquitto, prefix) as pbx,
            cluster_node(mosquitto, prefix, postgres_url, "a") as a,
        ):
            await until(lambda: len(a.held) == SHARDS and not a.not_ready())
            await pbx.send("agent/state", extension="102", state="available")
            # Another writer (the store itself, as another node's API would): its notice
            # reaches the holder, which builds the new queue and routes the new DID.
            tenant = TenantId(1)
            async with store.transaction() as tx:
                agent = await tx.extension_by_number(tenant, "102")
                assert agent is not None
                queue = await tx.insert_queue(
                    QueueConfig(QueueId(0), tenant, "Support", "601", "ringall", timeout=60)
                )
                await tx.enrol(queue.queue_id, agent.extension_id)
                await tx.upsert_did_route(tenant, "+200", QueueTarget(queue.queue_id))

            def applied() -> bool:
                engine = a.engine_for(tenant)
                return engine is not None and engine.queue(queue.queue_id) is not None

            await until(applied)
            await pbx.send("call/arrived", call_id="n1", did="+200")
            ring = await pbx.expect("cmd/ring", lambda p: p["call_id"] == "n1")
            assert ring["extension"] == "102"


async def test_a_deposed_holder_stops_the_shard_at_its_next_turn_and_publishes_nothing(
    mosquitto: MosquittoProcess, tmp_path: Path, postgres_url: str
) -> None:
    prefix = new_prefix()
    async with await Store.open(postgres_url) as store:
        await provision(write_config(tmp_path / "c.toml", "ringall", timeout=60), store)
    home = shard_of(TenantId(1), SHARDS)
    async with (
        pbx_on(mosquitto, prefix) as pbx,
        cluster_node(mosquitto, prefix, postgres_url, "a") as a,
    ):
        await until(lambda: len(a.held) == SHARDS and not a.not_ready())
        await pbx.send("agent/state", extension="101", state="available")
        await pbx.expect("event/agent/state", lambda p: p["extension"] == "101")
        # Another holder took the lease with a newer epoch while `a` was not looking (an
        # operator's reset, or a node that saw `a` lapse): `a`'s next turn is fenced.
        connection = await asyncpg.connect(postgres_url)
        try:
            await connection.execute(
                "UPDATE cluster_leases SET holder = 'z', epoch = epoch + 1,"
                " expires_at = now() + interval '1 hour' WHERE shard = $1",
                home,
            )
        finally:
            await connection.close()
        mark = pbx.mark()
        await pbx.send("call/arrived", call_id="c1", did="+100")
        await until(lambda: a.engine_for(TenantId(1)) is None)
        connection = await asyncpg.connect(postgres_url)
        try:
            row = await connection.fetchrow(
                "SELECT holder, epoch FROM cluster_leases WHERE shard = $1", home
            )
        finally:
            await connection.close()
        assert row is not None
        assert (row["holder"], row["epoch"]) == ("z", 2)  # `a` never took it back
        # Nothing of the refused turn was stored, so nothing of it can ever be published
        # (only committed outbox rows are): no call, no outbox row about it.
        async with await Store.open(postgres_url) as store:
            live = await store.load_live({TenantId(1)})
            assert [call.call_id for call in live.calls] == []
            # (Earlier turns' messages may wait there, unconfirmed: the next holder's.)
            pending = [message.payload for _, message in await store.pending_outbox(home)]
            assert [payload for payload in pending if b'"c1"' in payload] == []
        assert [seen.topic for seen in pbx.seen[mark:] if seen.topic.startswith("event/call")] == []


async def test_each_node_serves_its_own_tenants_live_and_any_tenants_configuration(
    mosquitto: MosquittoProcess, tmp_path: Path, postgres_url: str
) -> None:
    prefix = new_prefix()
    async with await Store.open(postgres_url) as store:
        await provision(write_config(tmp_path / "c.toml", "ringall", timeout=60), store)
    home = shard_of(TenantId(1), SHARDS)
    ports = {"a": free_port(), "b": free_port()}
    async with (
        pbx_on(mosquitto, prefix) as pbx,
        cluster_node(mosquitto, prefix, postgres_url, "a", api_port=ports["a"]) as a,
        cluster_node(mosquitto, prefix, postgres_url, "b", api_port=ports["b"]) as b,
    ):
        await until(lambda: len(a.held) + len(b.held) == SHARDS and not a.not_ready())
        await until(lambda: not b.not_ready())
        holder, other = ("a", "b") if home in a.held else ("b", "a")
        async with httpx.AsyncClient() as http:
            served = await http.get(f"http://127.0.0.1:{ports[holder]}/api/live/1")
            assert served.status_code == 200, served.text
            elsewhere = await http.get(f"http://127.0.0.1:{ports[other]}/api/live/1")
            assert elsewhere.status_code == 421, elsewhere.text
            assert "tenant 1 is served by another node" in elsewhere.json()["detail"]
            # Configuration through the node that does not run the tenant: the holder
            # applies it (the notice), and its answer came after this node's own re-read.
            queue = await http.post(
                f"http://127.0.0.1:{ports[other]}/api/queues",
                json={
                    "tenant_id": 1,
                    "name": "Support",
                    "queue_number": "601",
                    "strategy": "ringall",
                    "timeout": 30,
                },
            )
            assert queue.status_code == 201, queue.text
            enrolled = await http.post(
                f"http://127.0.0.1:{ports[other]}/api/queues/{queue.json()['id']}/agents",
                json={"extension_id": 2},
            )
            assert enrolled.status_code == 201, enrolled.text
            route = await http.post(
                f"http://127.0.0.1:{ports[other]}/api/did-routes",
                json={"tenant_id": 1, "did": "+300", "queue_id": queue.json()["id"]},
            )
            assert route.status_code == 201, route.text
        holding = a if holder == "a" else b
        queue_id = QueueId(queue.json()["id"])

        def applied() -> bool:
            engine = holding.engine_for(TenantId(1))
            return engine is not None and engine.queue(queue_id) is not None

        await until(applied)  # the notice's round trip
        await pbx.send("agent/state", extension="102", state="available")
        await pbx.expect("event/agent/state", lambda p: p["extension"] == "102")
        await pbx.send("call/arrived", call_id="s1", did="+300")
        ring = await pbx.expect("cmd/ring", lambda p: p["call_id"] == "s1")
        assert ring["extension"] == "102"


async def test_a_node_whose_listening_connection_dies_listens_again_and_misses_nothing(
    mosquitto: MosquittoProcess, tmp_path: Path, postgres_url: str
) -> None:
    prefix = new_prefix()
    tenant = TenantId(1)
    async with await Store.open(postgres_url) as store:
        await provision(write_config(tmp_path / "c.toml", "ringall", timeout=60), store)
        async with (
            pbx_on(mosquitto, prefix) as pbx,
            cluster_node(mosquitto, prefix, postgres_url, "a") as a,
        ):
            await until(lambda: len(a.held) == SHARDS and not a.not_ready())
            # A firewall or a proxy drops the idle connections that LISTEN; a write made
            # while they are gone sends notices nobody hears.
            connection = await asyncpg.connect(postgres_url)
            try:
                await connection.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                    " WHERE query LIKE 'LISTEN%' AND datname = current_database()"
                )
            finally:
                await connection.close()
            async with store.transaction() as tx:
                queue = await tx.insert_queue(
                    QueueConfig(QueueId(0), tenant, "Late", "602", "ringall", timeout=60)
                )
                agent = await tx.extension_by_number(tenant, "101")
                assert agent is not None
                await tx.enrol(queue.queue_id, agent.extension_id)
                await tx.upsert_did_route(tenant, "+400", QueueTarget(queue.queue_id))

            def applied() -> bool:
                engine = a.engine_for(tenant)
                return engine is not None and engine.queue(queue.queue_id) is not None

            # Listening again, the node re-reads the configuration it may have missed.
            await until(applied)
            await pbx.send("agent/state", extension="101", state="available")
            await pbx.send("call/arrived", call_id="late", did="+400")
            ring = await pbx.expect("cmd/ring", lambda p: p["call_id"] == "late")
            assert ring["extension"] == "101"
