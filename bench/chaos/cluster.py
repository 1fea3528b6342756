"""A cluster of daemons on one PostgreSQL and one mosquitto, under the PBX model.

The real-process cluster tests (tests/integration/test_cluster_failover.py) and the takeover
measurement (`python -m bench.cluster_takeover`) share this harness: `Cluster` runs
`python -m ringmaster run` once per node (each with its own name and admin API port,
the same database, prefix and client id base), `ClusterPbx` is the chaos run's PBX
model (bench/chaos/pbx.py, with its invariants in verdict.py) told also about each
shard's status, and `under_load` offers calls while it kills nodes and starts them
again, recording when each shard of a killed node rang again.

What is waited for is always polled with a bound (`WAIT_S`), never slept for: the
database (`GET /api/cluster`) says who holds what, and a tenant is served when a
hangup for a call nobody knows comes back on its error topic.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
import signal
import statistics
import subprocess
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from bench.chaos import verdict
from bench.chaos.pbx import Pbx, at_epoch
from bench.chaos.plan import Plan, QueueSpec, arrivals, provisioning
from bench.common import PYTHON, ROOT, reap
from ringmaster.api.provisioning import provision
from ringmaster.cluster.placement import balanced
from ringmaster.cluster.shards import shard_of
from ringmaster.daemon.broker import free_port
from ringmaster.store import Store

#: An upper bound on any wait of the harness (never a measured figure).
WAIT_S = 30.0
#: How often a condition on the real processes is polled.
POLL_S = 0.05
#: Single-ring strategies, one per tenant in turn: a ringall per call would multiply
#: the messages of a load that is meant to measure takeovers, not ringall.
STRATEGIES = (
    "leastrecent",
    "roundrobin",
    "linear",
    "fewestcalls",
    "longestidle",
    "random",
    "rrordered",
    "leasttalktime",
)


class ClusterError(Exception):
    """The cluster did not reach the state waited for; the message says what it was in."""


# --- the tenants -----------------------------------------------------------------------------


def spread_tenants(shards: int, per_shard: int) -> list[int]:
    """Tenant ids such that every shard holds `per_shard` of them (the smallest such ids)."""
    found: dict[int, list[int]] = {shard: [] for shard in range(shards)}
    tenant = 0
    while any(len(held) < per_shard for held in found.values()):
        tenant += 1
        held = found[shard_of(tenant, shards)]
        if len(held) < per_shard:
            held.append(tenant)
    return sorted(t for held in found.values() for t in held)


def cluster_queues(
    tenants: Iterable[int], calls_per_s: float, *, agents: int | None = None
) -> tuple[QueueSpec, ...]:
    """One queue per tenant, DID ``+3<tenant>``, with enough agents to answer most calls.

    Each call holds an agent for about 5 s (ring and talk), as in the chaos plan.
    """
    chosen = list(tenants)
    n = agents or max(3, math.ceil(calls_per_s / len(chosen) * 4.0 * 1.3))
    return tuple(
        QueueSpec(
            tenant=tenant,
            number="600",
            strategy=STRATEGIES[i % len(STRATEGIES)],
            did=f"+3{tenant:04d}",
            timeout=4,
            retry=1,
            agents=tuple(str(1000 + k) for k in range(n)),
        )
        for i, tenant in enumerate(chosen)
    )


def cluster_plan(
    *, shards: int, per_shard: int, calls_per_s: float, duration_s: float, seed: int = 1
) -> Plan:
    """The chaos plan of a cluster run: its tenants spread over every shard, no fuzz."""
    tenants = spread_tenants(shards, per_shard)
    return Plan(
        seed=seed,
        calls_per_s=calls_per_s,
        duration_s=duration_s,
        kills=0,
        broker_restarts=0,
        fuzz=0,
        talk_s=(1.0, 3.0),
        queues=cluster_queues(tenants, calls_per_s),
    )


async def provision_plan(database_url: str, plan: Plan, work: Path) -> None:
    """Write the plan's tenants, extensions, queues and DID routes to the database."""
    config = work / "cluster.toml"
    config.write_text(provisioning(plan.queues, fuzz_tenant=False), encoding="utf-8")
    async with await Store.open(database_url) as store:
        await provision(config, store)


# --- the nodes -------------------------------------------------------------------------------


@dataclass(eq=False)
class Node:
    """One `python -m ringmaster run` of the cluster; it dies with the harness."""

    name: str
    env: dict[str, str]
    log: Path
    api_port: int
    process: subprocess.Popen[bytes] | None = None
    #: Exit statuses of deaths the harness did not cause (a crash), with the log's tail.
    deaths: list[str] = field(default_factory=list)
    killed: bool = False
    #: When it was last spawned (epoch seconds).
    started_at: float = 0.0

    @property
    def api(self) -> str:
        """The base URL of its admin API."""
        return f"http://127.0.0.1:{self.api_port}"

    @property
    def alive(self) -> bool:
        """Its process is running."""
        return self.process is not None and self.process.poll() is None

    def start(self) -> float:
        """Spawn it (from the event loop's thread: the death signal follows that thread).

        Returns:
            The time (epoch seconds) it was spawned.
        """
        self.killed = False
        with self.log.open("ab") as out:
            started = self.started_at = time.time()
            self.process = subprocess.Popen(
                ["setpriv", "--pdeathsig", "KILL", "--", PYTHON, "-m", "ringmaster", "run"],
                env={**os.environ, **self.env},
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=ROOT,
            )
        return started

    async def kill(self) -> float:
        """SIGKILL now.

        Returns:
            The time (epoch seconds) the signal was sent.
        """
        assert self.process is not None
        self.killed = True
        at = time.time()
        self.process.send_signal(signal.SIGKILL)
        await asyncio.to_thread(self.process.wait, WAIT_S)
        return at

    def check(self) -> None:
        """Note a death the harness did not cause."""
        p = self.process
        if p is not None and not self.killed and p.poll() is not None:
            self.deaths.append(f"{self.name}: exit {p.returncode}: {self.tail(3)}")
            self.killed = True  # noted once

    def stop(self) -> None:
        """SIGTERM, SIGKILL if it does not stop in time."""
        p = self.process
        if p is None or p.poll() is not None:
            return
        self.killed = True
        p.send_signal(signal.SIGTERM)
        reap(p, WAIT_S)

    def tail(self, lines: int = 20) -> str:
        """The last lines of its log."""
        try:
            text = self.log.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])


class Cluster:
    """The nodes of one cluster: one database, one broker, one prefix.

    Args:
        broker_url: ``mqtt://host:port``.
        database_url: ``postgresql://...``, provisioned.
        prefix: The topic prefix, the same on every node.
        shards: ``cluster.shards``.
        work: Where the nodes' logs go.
        log_level: The nodes' log level.
        env: Further settings for every node (``RINGMASTER_...``).
    """

    def __init__(
        self,
        *,
        broker_url: str,
        database_url: str,
        prefix: str,
        shards: int,
        work: Path,
        log_level: str = "info",
        env: dict[str, str] | None = None,
    ) -> None:
        self.broker_url = broker_url
        self.database_url = database_url
        self.prefix = prefix
        self.shards = shards
        self.work = work
        self.log_level = log_level
        self.extra_env = env or {}
        self.nodes: dict[str, Node] = {}
        self._http = httpx.AsyncClient(timeout=5.0)

    def node(self, name: str) -> Node:
        """The node called `name`, made (not started) the first time it is asked for."""
        if name not in self.nodes:
            port = free_port()
            env = {
                "RINGMASTER_DATABASE__URL": self.database_url,
                "RINGMASTER_CLUSTER__SHARDS": str(self.shards),
                "RINGMASTER_CLUSTER__NODE": name,
                "RINGMASTER_MQTT__URL": self.broker_url,
                "RINGMASTER_MQTT__TOPIC_PREFIX": self.prefix,
                "RINGMASTER_MQTT__CLIENT_ID": f"ringmaster-{self.prefix}",
                "RINGMASTER_API__ENABLED": "true",
                "RINGMASTER_API__PORT": str(port),
                "RINGMASTER_LOG__FORMAT": "json",
                "RINGMASTER_LOG__LEVEL": self.log_level,
                **self.extra_env,
            }
            self.nodes[name] = Node(name, env, self.work / f"node-{name}.log", port)
        return self.nodes[name]

    def start(self, *names: str) -> None:
        """Start these nodes."""
        for name in names:
            self.node(name).start()

    @property
    def alive(self) -> set[str]:
        """The names of the nodes whose process runs."""
        return {name for name, node in self.nodes.items() if node.alive}

    def check(self) -> None:
        """Note every node's death the harness did not cause."""
        for node in self.nodes.values():
            node.check()

    def deaths(self) -> list[str]:
        """Every death the harness did not cause, so far."""
        self.check()
        return [death for node in self.nodes.values() for death in node.deaths]

    async def get(self, node: Node, path: str) -> httpx.Response:
        """GET `path` on a node's admin API."""
        return await self._http.get(node.api + path)

    async def request(self, node: Node, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """Any request on a node's admin API."""
        return await self._http.request(method, node.api + path, **kwargs)

    async def view(self, via: str | None = None) -> dict[str, Any]:
        """``GET /api/cluster`` on `via`, or on the longest-running live node that answers.

        Raises:
            ClusterError: No node answered 200.
        """
        # The longest-running node first: one just started answers late while it takes
        # in its shards' backlogs, which would delay what is being waited for.
        by_age = sorted(self.alive, key=lambda name: self.nodes[name].started_at)
        names = [via] if via is not None else by_age
        problems = []
        for name in names:
            try:
                response = await self.get(self.nodes[name], "/api/cluster")
            except httpx.HTTPError as error:
                problems.append(f"{name}: {error!r}")
                continue
            if response.status_code == 200:
                answer: dict[str, Any] = response.json()
                return answer
            problems.append(f"{name}: {response.status_code} {response.text[:200]}")
        raise ClusterError(f"no node answered GET /api/cluster: {problems}")

    async def placed(self, live: Iterable[str], *, via: str | None = None) -> dict[str, Any]:
        """Wait until the database shows every shard held as placement gives it to `live`.

        Placement is a function of the set of live nodes (`cluster.placement.balanced`),
        so a cluster that settled has exactly that, whatever happened before.

        Returns:
            The view (``GET /api/cluster``) that showed it.

        Raises:
            ClusterError: Not within `WAIT_S`; says the last view and the nodes' logs.
        """
        expected = balanced(self.shards, live)
        deadline = time.monotonic() + WAIT_S
        last: dict[str, Any] | str = "no answer yet"
        while True:
            try:
                view = await self.view(via)
            except ClusterError as error:
                last = str(error)
            else:
                if holders(view) == expected:
                    return view
                last = view
            if time.monotonic() > deadline:
                raise ClusterError(
                    f"the shards were not placed as {expected} within {WAIT_S} s; "
                    f"last view: {json.dumps(last)[:3000]}\n{self.logs()}"
                )
            await asyncio.sleep(POLL_S * 2)

    async def answering(self, names: Iterable[str]) -> None:
        """Wait until each of these nodes' admin API answers ``GET /api/cluster``.

        A node takes its shards before its API listens: the database may show it
        holding them while its API is still starting.

        Raises:
            ClusterError: Not within `WAIT_S`.
        """
        deadline = time.monotonic() + WAIT_S
        for name in names:
            while True:
                try:
                    await self.view(via=name)
                    break
                except ClusterError as error:
                    if time.monotonic() > deadline:
                        raise ClusterError(f"{error}\n{self.logs()}") from None
                await asyncio.sleep(POLL_S)

    def marks(self) -> dict[str, int]:
        """Where each node's log ends now, for `errors` to read only what follows."""
        return {name: _size(node.log) for name, node in self.nodes.items()}

    def errors(self, since: dict[str, int] | None = None) -> list[str]:
        """Every line logged at level error by a node (JSON logs), with the node's name.

        Args:
            since: Read each node's log from there (`marks`); from its start without.
        """
        found = []
        for name, node in self.nodes.items():
            try:
                with node.log.open("rb") as log:
                    log.seek((since or {}).get(name, 0))
                    text = log.read().decode(errors="replace")
            except OSError:
                continue
            for line in text.splitlines():
                if '"level": "error"' in line or '"level": "critical"' in line:
                    event = line
                    with contextlib.suppress(ValueError):
                        event = str(json.loads(line).get("event", line))
                    found.append(f"{node.name}: {event[:300]}")
        return found

    def logs(self, lines: int = 15) -> str:
        """The tail of every node's log, for a failure's message."""
        return "\n".join(f"--- {n.name} ---\n{n.tail(lines)}" for n in self.nodes.values())

    async def close(self) -> None:
        """Stop every node (SIGTERM, then SIGKILL) and the HTTP client."""
        for node in self.nodes.values():
            with contextlib.suppress(Exception):
                await asyncio.to_thread(node.stop)
        await self._http.aclose()


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def holders(view: dict[str, Any]) -> dict[int, str | None]:
    """Each shard -> its holder (None when free or lapsed), from a ``GET /api/cluster`` answer."""
    return {int(s["shard"]): s["holder"] for s in view["shard_list"]}


def tenants_by_shard(view: dict[str, Any]) -> dict[int, list[int]]:
    """Each shard -> its tenants, from a ``GET /api/cluster`` answer."""
    return {int(s["shard"]): [int(t) for t in s["tenants"]] for s in view["shard_list"]}


def epochs(view: dict[str, Any]) -> dict[int, int]:
    """Each shard -> its lease's epoch, from a ``GET /api/cluster`` answer."""
    return {int(s["shard"]): int(s["epoch"]) for s in view["shard_list"]}


# --- the PBX ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Heard:
    """A message of interest, when it came: a ring or a shard's status."""

    received: float
    key: int  # the ring's tenant, or the status's shard
    at: float | None  # the ring's `at` (ringmaster's decision), or the status's
    text: str  # the ring's call id, or the status's state


class ClusterPbx(Pbx):
    """The chaos PBX model, also hearing each shard's status and answering probes."""

    def __init__(self, plan: Plan, prefix: str, url: str) -> None:
        super().__init__(plan, prefix, url, also=(f"{prefix}/status/shard/+",))
        self.rings: list[Heard] = []
        self.shard_statuses: list[Heard] = []
        #: tenant -> when a probe's error came back from it.
        self.probed: dict[int, float] = {}

    def _received(self, topic: str, payload: bytes | bytearray, received: float) -> None:
        rest = topic[len(self.prefix) + 1 :]
        if rest.startswith("status/shard/"):
            with contextlib.suppress(ValueError):
                body = json.loads(payload) if payload else {}
                shard = int(rest.rsplit("/", 1)[1])
                state = str(body.get("state")) if isinstance(body, dict) else "?"
                at = at_epoch(body.get("at")) if isinstance(body, dict) else None
                self.shard_statuses.append(Heard(received, shard, at, state))
            return
        tenant_s, _, kind = rest.partition("/")
        if kind in ("cmd/ring", "error") and tenant_s.isdigit():
            with contextlib.suppress(ValueError):
                body = json.loads(payload) if payload else {}
                if kind == "cmd/ring" and isinstance(body, dict):
                    self.rings.append(
                        Heard(
                            received,
                            int(tenant_s),
                            at_epoch(body.get("at")),
                            str(body.get("call_id")),
                        )
                    )
                elif kind == "error" and isinstance(body, dict):
                    echoed = body.get("payload")
                    if isinstance(echoed, dict) and str(echoed.get("call_id")).startswith("probe-"):
                        self.probed.setdefault(int(tenant_s), received)
                        return
        super()._received(topic, payload, received)

    async def served(self, tenants: Iterable[int]) -> None:
        """Wait until every one of `tenants` is heard by a node (bounded by `WAIT_S`).

        A hangup for a call nobody knows is answered on the tenant's error topic only by
        a node subscribed to its topics; one sent before that is lost, so it is sent
        again until answered.

        Raises:
            ClusterError: Some tenant was not answered; names them.
        """
        self.probed.clear()
        pending = set(tenants)
        deadline = time.monotonic() + WAIT_S
        while pending - self.probed.keys():
            if time.monotonic() > deadline:
                raise ClusterError(f"tenants not served: {sorted(pending - self.probed.keys())}")
            for tenant in pending - self.probed.keys():
                self.send(tenant, "call/hangup", {"call_id": f"probe-{uuid.uuid4().hex[:12]}"})
            for _ in range(10):
                await asyncio.sleep(POLL_S)
                if not pending - self.probed.keys():
                    break

    def first_ring(self, tenants: Iterable[int], since: float) -> Heard | None:
        """The first ring heard for one of `tenants` that ringmaster decided at `since` or later."""
        chosen = set(tenants)
        found = [r for r in self.rings if r.key in chosen and r.at is not None and r.at >= since]
        return min(found, key=lambda r: r.received) if found else None

    def first_status(self, shard: int, state: str, since: float) -> Heard | None:
        """The first status `state` of `shard` heard at `since` or later."""
        found = [
            s
            for s in self.shard_statuses
            if s.key == shard and s.text == state and s.received >= since
        ]
        return found[0] if found else None


# --- a run under load ------------------------------------------------------------------------


@dataclass(frozen=True)
class Fault:
    """Kill a node `at_s` seconds into the load.

    With `back_after_s`, start it again that long after the database shows its shards
    on the survivors.
    """

    at_s: float
    node: str
    back_after_s: float | None = None


@dataclass
class Takeover:
    """One kill: the shards the node held and when each rang again elsewhere."""

    node: str
    killed_at: float
    #: shard -> its tenants, as the database said just before the kill.
    shards: dict[int, list[int]]
    before: dict[str, Any]
    after: dict[str, Any] | None = None
    #: Seconds from the kill to the database showing every shard placed on the survivors.
    placed_s: float | None = None
    #: shard -> seconds from the kill to the first ring decided after it, for its tenants.
    ring_s: dict[int, float | None] = field(default_factory=dict)
    #: shard -> seconds from the kill to its session's next "online".
    online_s: dict[int, float | None] = field(default_factory=dict)
    returned_at: float | None = None
    back: dict[str, Any] | None = None
    #: Seconds from the node's start to the database showing the placement restored.
    back_placed_s: float | None = None
    #: When the database was seen to show the placement restored.
    back_seen_at: float | None = None
    #: shard -> seconds from the node's start to the first ring decided after the database
    #: showed the shard back on it (so decided by it, not by the shard's interim holder).
    back_ring_s: dict[int, float | None] = field(default_factory=dict)
    #: shard -> seconds from the node's start to the shard's session "online" again.
    back_online_s: dict[int, float | None] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        """The figures of this kill, rounded, for a report."""

        def stats(values: dict[int, float | None]) -> dict[str, Any]:
            found = [v for v in values.values() if v is not None]
            return {
                "shards": len(values),
                "measured": len(found),
                "median_s": round(statistics.median(found), 3) if found else None,
                "max_s": round(max(found), 3) if found else None,
            }

        return {
            "node": self.node,
            "shards": sorted(self.shards),
            "placed_elsewhere_s": None if self.placed_s is None else round(self.placed_s, 3),
            "kill_to_first_ring": stats(self.ring_s),
            "kill_to_shard_online": stats(self.online_s),
            "per_shard_ring_s": {
                s: None if v is None else round(v, 3) for s, v in sorted(self.ring_s.items())
            },
            "return_to_placement_s": (
                None if self.back_placed_s is None else round(self.back_placed_s, 3)
            ),
            "return_to_first_ring": stats(self.back_ring_s) if self.returned_at else None,
            "return_to_shard_online": stats(self.back_online_s) if self.returned_at else None,
        }


@dataclass
class Outcome:
    """What a run under load found."""

    pbx: ClusterPbx
    takeovers: list[Takeover]
    invariants: list[verdict.Invariant]
    figures: dict[str, Any]

    @property
    def broken(self) -> list[verdict.Invariant]:
        """The invariants broken."""
        return [i for i in self.invariants if i.broken]

    def render(self, args: str) -> str:
        """The run's summary: invariants, figures and each kill, as plain text."""
        text = verdict.render(self.invariants, self.figures, verdict.machine(), args)
        kills = "\n".join(json.dumps(t.summary()) for t in self.takeovers)
        return f"{text}\n\nkills:\n{kills}"


async def under_load(
    cluster: Cluster,
    pbx: ClusterPbx,
    plan: Plan,
    faults: list[Fault],
    *,
    say: Callable[[str], None] = lambda s: None,
) -> Outcome:
    """Offer the plan's calls while the faults strike; the verdict once every call ended.

    The cluster must be placed and every tenant served (`ClusterPbx.served`); this
    logs every agent in, offers the calls, kills and restarts nodes as `faults` say,
    then lets the callers still waiting hang up and waits (bounded) for every call's
    final state.
    """
    loop = asyncio.get_running_loop()
    started = time.monotonic()
    # The run's own errors: the nodes' start-up is not what a run under load judges.
    marks = cluster.marks()
    pbx.login_all()
    await asyncio.sleep(1.0)  # the agents' states reach their shards before the first call
    t0 = loop.time()
    calls = arrivals(plan)
    handles = [loop.call_at(t0 + a.at_s, pbx.offer, a) for a in calls]
    say(f"load: {len(calls)} calls over {plan.duration_s:.0f} s, faults {faults}")
    takeovers: list[Takeover] = []
    try:
        for fault in sorted(faults, key=lambda f: f.at_s):
            await asyncio.sleep(max(0.0, t0 + fault.at_s - loop.time()))
            takeovers.append(await _kill(cluster, fault, say))
        await asyncio.sleep(max(0.0, t0 + plan.duration_s - loop.time()))
        say("load done; settling")
        await asyncio.sleep(plan.settle_s)
        pbx.hang_up_waiting()
        deadline = loop.time() + plan.drain_s
        while not pbx.settled() and loop.time() < deadline:  # noqa: ASYNC110 (polled)
            await asyncio.sleep(0.2)
        await asyncio.sleep(1.0)  # anything late (a ring for an ended call) still counts
    finally:
        for handle in handles:
            handle.cancel()
    for takeover in takeovers:
        _measure(pbx, takeover)
    deaths = cluster.deaths()
    errors = cluster.errors(marks)
    invariants = [
        *verdict.call_invariants(pbx),
        verdict.Invariant("node deaths not caused by the harness", len(deaths), deaths[:5]),
        # A kill, a takeover and a hand-back are what a cluster is for: none is an error.
        verdict.Invariant("error lines in the nodes' logs under load", len(errors), errors[:5]),
    ]
    c = verdict.calls(pbx)
    figures = {
        "calls offered": c["offered"],
        "calls bridged by the PBX": c["bridged"],
        "final states": c["outcomes"],
        "nodes killed": len(takeovers),
        "error messages received": pbx.errors_seen,
        "rings crossing an answer (allowed)": pbx.counts["rings_crossing_an_answer"],
        "cancels of bridged rings (allowed)": pbx.counts["cancels_of_bridged_rings"],
        "repeated messages (at least once)": pbx.counts["repeated_messages"],
        "wall time s": round(time.monotonic() - started, 1),
    }
    return Outcome(pbx, takeovers, invariants, figures)


async def _kill(cluster: Cluster, fault: Fault, say: Callable[[str], None]) -> Takeover:
    node = cluster.nodes[fault.node]
    survivors = cluster.alive - {fault.node}
    before = await cluster.view(via=min(survivors))
    mine = {s: t for s, t in tenants_by_shard(before).items() if holders(before)[s] == fault.node}
    killed_at = await node.kill()
    say(f"kill -9 {fault.node} (shards {sorted(mine)})")
    takeover = Takeover(fault.node, killed_at, mine, before)
    takeover.after = await cluster.placed(survivors)
    takeover.placed_s = time.time() - killed_at
    say(f"its shards placed on {sorted(survivors)} after {takeover.placed_s:.2f} s")
    if fault.back_after_s is not None:
        await asyncio.sleep(fault.back_after_s)
        takeover.returned_at = node.start()
        takeover.back = await cluster.placed(cluster.alive)
        takeover.back_seen_at = time.time()
        takeover.back_placed_s = takeover.back_seen_at - takeover.returned_at
        await cluster.answering([fault.node])
        say(f"{fault.node} back; placement restored after {takeover.back_placed_s:.2f} s")
    return takeover


def _measure(pbx: ClusterPbx, takeover: Takeover) -> None:
    for shard, tenants in takeover.shards.items():
        ring = pbx.first_ring(tenants, takeover.killed_at)
        takeover.ring_s[shard] = None if ring is None else ring.received - takeover.killed_at
        online = pbx.first_status(shard, "online", takeover.killed_at)
        takeover.online_s[shard] = None if online is None else online.received - takeover.killed_at
        if takeover.returned_at is not None and takeover.back_seen_at is not None:
            back = pbx.first_ring(tenants, takeover.back_seen_at)
            takeover.back_ring_s[shard] = (
                None if back is None else back.received - takeover.returned_at
            )
            online = pbx.first_status(shard, "online", takeover.returned_at)
            takeover.back_online_s[shard] = (
                None if online is None else online.received - takeover.returned_at
            )
