"""Two and three daemons of a cluster on a real PostgreSQL and a real mosquitto.

Each node is ``python -m ringmaster run`` with its own name and admin API port, the
same database, prefix and client id base (bench/chaos/cluster.py). What is checked
(issue 13, "Tested on the real parts"): the shards' spread, a configuration written
through one node and applied by the holder of its tenant, a holder killed with
SIGKILL under load with every invariant of the chaos run's PBX model kept, and a
killed node's return. Every wait is bounded and polled; no figure is asserted (the
takeover's duration is measured by ``python -m bench.cluster_takeover``).
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from bench.chaos.cluster import (
    WAIT_S,
    Cluster,
    ClusterPbx,
    Fault,
    Outcome,
    cluster_plan,
    epochs,
    holders,
    provision_plan,
    tenants_by_shard,
    under_load,
)
from bench.chaos.plan import Plan

from ringmaster.cluster.placement import balanced
from ringmaster.daemon.broker import MosquittoProcess

from .pbx import Pbx, listening, new_prefix

pytestmark = pytest.mark.integration

SHARDS = 8


@asynccontextmanager
async def cluster_of(
    mosquitto: MosquittoProcess, postgres_url: str, tmp_path: Path, plan: Plan, *nodes: str
) -> AsyncIterator[tuple[Cluster, ClusterPbx]]:
    """The plan provisioned, the nodes started and placed, every tenant served."""
    await provision_plan(postgres_url, plan, tmp_path)
    prefix = new_prefix()
    cluster = Cluster(
        broker_url=mosquitto.url,
        database_url=postgres_url,
        prefix=prefix,
        shards=SHARDS,
        work=tmp_path,
    )
    pbx = ClusterPbx(plan, prefix, mosquitto.url)
    try:
        pbx.start()
        cluster.start(*nodes)
        await cluster.placed(nodes)
        await cluster.answering(nodes)
        await pbx.served(q.tenant for q in plan.queues)
        yield cluster, pbx
    finally:
        pbx.link.close()
        await cluster.close()


def quiet(plan_per_shard: int = 2) -> Plan:
    """Tenants on every shard and no load: for what is checked call by call."""
    return cluster_plan(shards=SHARDS, per_shard=plan_per_shard, calls_per_s=1, duration_s=1)


async def shard_statuses_online(pbx: ClusterPbx) -> None:
    """Wait until the last status each shard's session published is "online"."""
    async with asyncio.timeout(WAIT_S):
        while True:
            last = {s.key: s.text for s in pbx.shard_statuses}
            if last == dict.fromkeys(range(SHARDS), "online"):
                return
            await asyncio.sleep(0.05)


async def test_the_shards_spread_evenly_over_two_then_three_nodes(
    mosquitto: MosquittoProcess, postgres_url: str, tmp_path: Path
) -> None:
    plan = quiet()
    tenants = [q.tenant for q in plan.queues]
    async with cluster_of(mosquitto, postgres_url, tmp_path, plan, "a", "b") as (cluster, pbx):
        for name in ("a", "b"):  # any node says the same
            view = await cluster.view(via=name)
            assert view["node"] == name
            assert view["shards"] == SHARDS
            assert Counter(holders(view).values()) == {"a": 4, "b": 4}
            assert {n["node"] for n in view["nodes"] if n["alive"]} == {"a", "b"}
        await shard_statuses_online(pbx)

        cluster.start("c")
        view = await cluster.placed(("a", "b", "c"))
        await cluster.answering("c")
        counts = Counter(holders(view).values())
        assert set(counts) == {"a", "b", "c"}
        assert set(counts.values()) <= {SHARDS // 3, SHARDS // 3 + 1}, counts
        assert sum(counts.values()) == SHARDS
        for name in ("a", "b", "c"):
            assert holders(await cluster.view(via=name)) == balanced(SHARDS, ("a", "b", "c"))
        # Every tenant is still heard, by the shard's new holder where it moved.
        await pbx.served(tenants)
        await shard_statuses_online(pbx)
        assert sorted(t for ts in tenants_by_shard(view).values() for t in ts) == sorted(tenants)
        assert cluster.deaths() == []


def served_by(view: dict[str, Any], node: str) -> int:
    """A tenant whose shard `node` holds, in this view."""
    held = holders(view)
    return next(
        t for s, ts in sorted(tenants_by_shard(view).items()) if held[s] == node for t in ts
    )


async def test_configuration_written_through_one_node_is_applied_by_the_tenant_s_holder(
    mosquitto: MosquittoProcess, postgres_url: str, tmp_path: Path
) -> None:
    plan = quiet()
    async with cluster_of(mosquitto, postgres_url, tmp_path, plan, "a", "b") as (cluster, _):
        tenant = served_by(await cluster.view(), "b")
        queue_id = plan_queue_id(plan, tenant)
        a = cluster.nodes["a"]

        # Through a, which does not run the tenant: the queue's ring timeout, then a DID.
        patched = await cluster.request(a, "PATCH", f"/api/queues/{queue_id}", json={"timeout": 9})
        assert patched.status_code == 200, patched.text
        route = await cluster.request(
            a,
            "POST",
            "/api/did-routes",
            json={"tenant_id": tenant, "did": "+7000", "queue_id": queue_id},
        )
        assert route.status_code == 201, route.text

        prefix = cluster.prefix
        async with listening(
            mosquitto, lambda client: Pbx(client, prefix, tenant), [f"{prefix}/{tenant}/#"]
        ) as phone:
            # The PBX knows nothing of shards: it publishes on the tenant's topics, and
            # only b hears them.
            await until_accepted(phone, "1000")
            call_id = await call_until_routed(phone, "+7000")
            ring = await phone.expect("cmd/ring", lambda p: p["call_id"] == call_id)
            assert (ring["extension"], ring["queue_id"]) == ("1000", queue_id)
            # b re-read the tenant whole: the timeout written before the route is in force.
            assert ring["timeout"] == 9

            await phone.send("call/answered", call_id=call_id, extension="1000")
            await phone.expect("event/call/answered", lambda p: p["call_id"] == call_id)
            await phone.send("call/hangup", call_id=call_id)
            await phone.expect("event/call/completed", lambda p: p["call_id"] == call_id)
        assert cluster.deaths() == []


async def test_a_call_s_live_view_is_served_by_its_holder_and_misdirected_elsewhere(
    mosquitto: MosquittoProcess, postgres_url: str, tmp_path: Path
) -> None:
    plan = quiet()
    async with cluster_of(mosquitto, postgres_url, tmp_path, plan, "a", "b") as (cluster, _):
        tenant = served_by(await cluster.view(), "b")
        queue_id = plan_queue_id(plan, tenant)
        did = next(q.did for q in plan.queues if q.tenant == tenant)
        a, b = cluster.nodes["a"], cluster.nodes["b"]
        prefix = cluster.prefix
        async with listening(
            mosquitto, lambda client: Pbx(client, prefix, tenant), [f"{prefix}/{tenant}/#"]
        ) as phone:
            await until_accepted(phone, "1000")
            await phone.send("call/arrived", call_id="c1", did=did)
            await phone.expect("cmd/ring", lambda p: p["call_id"] == "c1")

            on_b = await cluster.get(b, f"/api/queues/{queue_id}/calls")
            assert on_b.status_code == 200, on_b.text
            assert [(c["call_id"], c["ringing"]) for c in on_b.json()] == [("c1", ["1000"])]
            # a does not run the tenant: it sends the asker to the holder.
            on_a = await cluster.get(a, f"/api/queues/{queue_id}/calls")
            assert on_a.status_code == 421, on_a.text
            assert str(tenant) in on_a.json()["detail"]


async def test_an_agent_enrolled_through_another_node_is_rung_by_the_tenant_s_holder(
    mosquitto: MosquittoProcess, postgres_url: str, tmp_path: Path
) -> None:
    plan = quiet()
    async with cluster_of(mosquitto, postgres_url, tmp_path, plan, "a", "b") as (cluster, _):
        tenant = served_by(await cluster.view(), "b")
        queue_id = plan_queue_id(plan, tenant)
        a = cluster.nodes["a"]
        extension = await cluster.request(
            a, "POST", "/api/extensions", json={"tenant_id": tenant, "number": "150"}
        )
        assert extension.status_code == 201, extension.text
        enrolled = await cluster.request(
            a,
            "POST",
            f"/api/queues/{queue_id}/agents",
            json={"extension_id": extension.json()["id"]},
        )
        assert enrolled.status_code == 201, enrolled.text

        prefix = cluster.prefix
        async with listening(
            mosquitto, lambda client: Pbx(client, prefix, tenant), [f"{prefix}/{tenant}/#"]
        ) as phone:
            # Only 150 is available: the others of the queue never logged in.
            await until_accepted(phone, "150")
            did = next(q.did for q in plan.queues if q.tenant == tenant)
            await phone.send("call/arrived", call_id="c1", did=did)
            ring = await phone.expect("cmd/ring", lambda p: p["call_id"] == "c1")
            assert ring["extension"] == "150"


def plan_queue_id(plan: Plan, tenant: int) -> int:
    """The id of the tenant's queue: provisioning writes the plan's queues in order from 1."""
    return 1 + [q.tenant for q in plan.queues].index(tenant)


async def call_until_routed(phone: Pbx, did: str) -> str:
    """Offer calls on `did` until one is not rejected for want of a route (bounded).

    The holder applies a configuration notice soon after the commit, not before it: a
    call in between is rejected, and the PBX's caller tries again.

    Returns:
        The call id of the call that was routed.
    """
    deadline = time.monotonic() + WAIT_S
    n = 0
    while time.monotonic() < deadline:
        n += 1
        call_id = f"r{n}"
        await phone.send("call/arrived", call_id=call_id, did=did)
        if await routed(phone, call_id):
            return call_id
        await asyncio.sleep(0.1)
    pytest.fail(f"no call on {did} was routed: {phone.seen[-5:]}")


async def routed(phone: Pbx, call_id: str) -> bool:
    """Whether the call was queued (True) or rejected (False), once ringmaster says."""
    async with asyncio.timeout(WAIT_S):
        while True:
            for item in phone.seen:
                if item.payload.get("call_id") != call_id:
                    continue
                if item.topic == "event/call/rejected":
                    return False
                if item.topic in ("event/call/queued", "cmd/ring"):
                    return True
            await asyncio.sleep(0.02)


async def until_accepted(phone: Pbx, extension: str) -> None:
    """Say the agent is available until ringmaster confirms it (bounded by `WAIT_S`)."""
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        mark = phone.mark()
        await phone.send("agent/state", extension=extension, state="available")
        for _ in range(20):
            await asyncio.sleep(0.05)
            if any(
                s.topic == "event/agent/state" and s.payload.get("extension") == extension
                for s in phone.seen[mark:]
            ):
                return
    pytest.fail(f"agent {extension} was never accepted: {phone.seen[-5:]}")


def assert_kept(outcome: Outcome, cluster: Cluster) -> None:
    """Every invariant held; else the run's summary and the nodes' logs."""
    assert outcome.broken == [], f"{outcome.render('cluster')}\n{cluster.logs()}"
    assert outcome.figures["calls bridged by the PBX"] > 0, outcome.render("cluster")


async def test_a_holder_killed_under_load_loses_its_shards_to_the_others_and_no_call(
    mosquitto: MosquittoProcess, postgres_url: str, tmp_path: Path
) -> None:
    plan = cluster_plan(shards=SHARDS, per_shard=2, calls_per_s=100, duration_s=14)
    nodes = ("a", "b", "c")
    async with cluster_of(mosquitto, postgres_url, tmp_path, plan, *nodes) as (cluster, pbx):
        outcome = await under_load(cluster, pbx, plan, [Fault(at_s=4.0, node="b")])
        assert_kept(outcome, cluster)
        (takeover,) = outcome.takeovers
        assert takeover.shards, "b held no shard"
        assert takeover.after is not None
        after, old, new = holders(takeover.after), epochs(takeover.before), epochs(takeover.after)
        for shard in takeover.shards:
            assert after[shard] in {"a", "c"}
            assert new[shard] > old[shard]
            # Its calls rang again, decided after the kill (by the new holder).
            assert takeover.ring_s[shard] is not None, (shard, outcome.render("cluster"))


async def test_a_killed_node_that_returns_gets_its_shards_back_and_calls_go_on(
    mosquitto: MosquittoProcess, postgres_url: str, tmp_path: Path
) -> None:
    plan = cluster_plan(shards=SHARDS, per_shard=2, calls_per_s=50, duration_s=22)
    nodes = ("a", "b", "c")
    async with cluster_of(mosquitto, postgres_url, tmp_path, plan, *nodes) as (cluster, pbx):
        fault = Fault(at_s=3.0, node="c", back_after_s=2.0)
        outcome = await under_load(cluster, pbx, plan, [fault])
        assert_kept(outcome, cluster)
        (takeover,) = outcome.takeovers
        assert takeover.back is not None
        assert takeover.after is not None
        # Placement is a function of the live nodes: c has exactly its shards again.
        assert holders(takeover.back) == holders(takeover.before)
        back, between = epochs(takeover.back), epochs(takeover.after)
        assert takeover.shards, "the killed node held no shard"
        for shard in takeover.shards:
            assert back[shard] > between[shard]
            # c rings for them again: decided after the database showed them back on c.
            assert takeover.back_ring_s[shard] is not None, (shard, outcome.render("cluster"))
        assert cluster.alive == set(nodes)
