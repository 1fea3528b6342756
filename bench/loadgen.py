"""The pretend PBX (and the echo ceiling), each run in its own process.

`python -m bench.loadgen '{"mode": ..., ...}'` prints one JSON line of results.
Latency is measured from the *scheduled* send time (an absolute schedule,
`t0 + i / rate`), so a generator that falls behind counts its own lateness
against the figure instead of hiding it (no coordinated omission).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import socket
import sys
import time
import uuid
from collections.abc import Callable, Coroutine
from typing import Any

import aiomqtt

from bench.common import numbers, percentiles

NODELAY = [(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)]
now_ns = time.perf_counter_ns

#: The echo throughput phase stops after this many messages even if time is left.
MAX_ECHO_MESSAGES = 2_000_000
#: The seed sends this many arrivals, then pauses: bounded in-flight, since the seed
#: prepares a restart and is not itself a measurement.
SEED_BURST = 200


def client(url: str, name: str) -> aiomqtt.Client:
    """An MQTT client for the generator, configured like the daemon's (TCP_NODELAY)."""
    host, port = url.removeprefix("mqtt://").rsplit(":", 1)
    c = aiomqtt.Client(
        host,
        int(port),
        identifier=f"{name}-{uuid.uuid4().hex[:8]}",
        socket_options=NODELAY,
        max_inflight_messages=1000,
        timeout=30,
    )
    # aiomqtt logs a warning per publish beyond 10 in flight; the generator keeps
    # hundreds in flight, and those lines cost it CPU the daemon shares.
    c.pending_calls_threshold = 1_000_000
    return c


async def paced(rate: float, count: int, send: Callable[[int, int], None]) -> dict[str, float]:
    """Call `send(i, scheduled_ns)` on an absolute schedule; report how late we were."""
    period = 1e9 / rate
    t0 = now_ns() + 20_000_000
    worst = 0
    for i in range(count):
        at = t0 + int(i * period)
        delay = at - now_ns()
        if delay > 0:
            await asyncio.sleep(delay / 1e9)
        worst = max(worst, now_ns() - at)
        send(i, at)
    took = (now_ns() - t0) / 1e9
    return {"sent": count, "send_s": round(took, 3), "max_send_lag_ms": round(worst / 1e6, 3)}


class Tasks:
    """Keeps publish tasks alive until they finish (QoS 1: until the PUBACK)."""

    def __init__(self) -> None:
        self.live: set[asyncio.Task[None]] = set()
        self.failed = 0

    def spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        """Run `coro` as a task, kept until it ends; a failure is counted."""
        task = asyncio.ensure_future(coro)
        self.live.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self.live.discard(task)
        if not task.cancelled() and task.exception() is not None:
            self.failed += 1

    async def drain(self) -> None:
        """Wait (at most 30 s) for every live task."""
        if self.live:
            await asyncio.wait(self.live, timeout=30)


# --- the ceiling: an echo through the same broker and client library -------------


async def echo_server(a: dict[str, Any]) -> dict[str, Any]:
    """Republish every `P/req` on `P/rsp` until a `stop`: the ceiling's other end."""
    tasks = Tasks()
    echoed = 0
    async with client(a["url"], "echo-server") as c:
        await c.subscribe(f"{a['prefix']}/req", qos=1)
        await c.publish(f"{a['prefix']}/ready", b"1", qos=1, retain=True)
        async with asyncio.timeout(a["max_s"]):
            async for m in c.messages:
                if m.payload == b"stop":
                    break
                tasks.spawn(c.publish(f"{a['prefix']}/rsp", m.payload, qos=1))
                echoed += 1
        await tasks.drain()
    return {"echoed": echoed}


class _EchoClient:
    """The echo's sending end: what was sent when, what came back when."""

    def __init__(self, c: aiomqtt.Client, prefix: str) -> None:
        self.c, self.prefix = c, prefix
        self.got: dict[int, int] = {}
        self.ready = asyncio.Event()
        self.tasks = Tasks()
        self._waiters: list[tuple[int, asyncio.Event]] = []

    async def collect(self) -> None:
        """Record each echo's arrival; wake whoever waits for a count of them."""
        async for m in self.c.messages:
            if m.topic.matches(f"{self.prefix}/ready"):
                self.ready.set()
                continue
            self.got[int(m.payload)] = now_ns()
            for target, event in self._waiters:
                if len(self.got) >= target:
                    event.set()

    def send(self, i: int) -> None:
        """Publish request `i`."""
        self.tasks.spawn(self.c.publish(f"{self.prefix}/req", str(i).encode(), qos=1))

    async def until(self, count: int, timeout_s: float = 10) -> None:
        """Wait until `count` echoes in all have come back, or `timeout_s` passed."""
        event = asyncio.Event()
        self._waiters.append((count, event))
        if len(self.got) >= count:
            event.set()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout_s):
                await event.wait()

    async def throughput(self, seconds: float, window: int = 200) -> tuple[int, float]:
        """Keep `window` requests in flight for `seconds`: (requests sent, msgs/s echoed)."""
        start = now_ns()
        end = start + int(seconds * 1e9)
        i = 0
        while now_ns() < end and i < MAX_ECHO_MESSAGES:
            while i - len(self.got) < window and i < MAX_ECHO_MESSAGES:
                self.send(i)
                i += 1
            await asyncio.sleep(0)
        await self.until(i)
        took = (max(self.got.values()) - start) / 1e9
        return i, len(self.got) / took


async def echo(a: dict[str, Any]) -> dict[str, Any]:
    """The ceiling: round trips/s with a window in flight, then latency at paced rates."""
    prefix = a["prefix"]
    results: dict[str, Any] = {}
    async with client(a["url"], "echo-client") as c:
        await c.subscribe(f"{prefix}/rsp", qos=1)
        await c.subscribe(f"{prefix}/ready", qos=1)
        e = _EchoClient(c, prefix)
        reader = asyncio.create_task(e.collect())
        async with asyncio.timeout(30):
            await e.ready.wait()
        base, per_s = await e.throughput(a["throughput_s"])
        results["throughput_msgs_per_s"] = round(per_s)
        for rate in a["rates"]:
            count = int(rate * a["seconds"])
            sched: dict[int, int] = {}

            def send(k: int, at: int, base: int = base, sched: dict[int, int] = sched) -> None:
                sched[base + k] = at
                e.send(base + k)

            pacing = await paced(rate, count, send)
            await e.until(base + count)
            lat = [e.got[k] - at for k, at in sched.items() if k in e.got]
            results[f"rate_{rate}"] = {**percentiles(lat), **pacing, "lost": count - len(lat)}
            base += count
        await e.tasks.drain()
        await c.publish(f"{prefix}/req", b"stop", qos=1)
        reader.cancel()
    return results


# --- the PBX -------------------------------------------------------------------------


async def login(c: aiomqtt.Client, topic: str, agents: list[str], state: str = "available") -> None:
    """Publish each agent's state on `topic`, all in flight at once; wait for every PUBACK."""
    tasks = Tasks()
    for n in agents:
        tasks.spawn(c.publish(topic, json.dumps({"extension": n, "state": state}), qos=1))
    await tasks.drain()


#: What the pretend PBX of `arrival` hears of each tenant.
CALL_TOPICS = ("cmd/ring", "event/call/completed", "event/call/abandoned", "event/call/rejected")


async def _subscribe(c: aiomqtt.Client, topics: list[str]) -> None:
    for topic in topics:
        await c.subscribe(topic, qos=1)


async def arrival(a: dict[str, Any]) -> dict[str, Any]:  # noqa: PLR0915 - the PBX, read as one
    """Full-life calls at a paced rate: arrived -> (cmd/ring) -> answered -> hangup.

    With `tenants` (default [1]) the calls go to each tenant in turn, each with its
    own `agents`; `done_s` is the time from the first scheduled arrival to the last
    call's final event (the calls completed per second of it is the throughput).
    """
    prefix, tenants = a["prefix"], a.get("tenants", [1])
    hold_s, rate = a["hold_s"], a["rate"]
    count = int(rate * a["seconds"])
    dids = [f"+1000{q}" for q in range(a.get("queues", 1))]
    sched: dict[str, int] = {}
    ring_ns: dict[str, int] = {}
    final: dict[str, str] = {}
    last_final = [0]
    tasks = Tasks()
    loop = asyncio.get_running_loop()
    all_done = asyncio.Event()
    expected = [0]
    async with client(a["url"], "pbx") as c:
        await _subscribe(c, [f"{prefix}/{tenant}/{t}" for tenant in tenants for t in CALL_TOPICS])

        def hangup(p: str, call_id: str) -> None:
            tasks.spawn(c.publish(f"{p}/pbx/call/hangup", json.dumps({"call_id": call_id}), qos=1))

        async def collect() -> None:
            async for m in c.messages:
                t = now_ns()
                tenant, topic = str(m.topic)[len(prefix) + 1 :].split("/", 1)
                p = f"{prefix}/{tenant}"
                body = json.loads(m.payload)
                call_id = body["call_id"]
                if topic == "cmd/ring":
                    if call_id in ring_ns:
                        continue
                    ring_ns[call_id] = t
                    tasks.spawn(
                        c.publish(
                            f"{p}/pbx/call/answered",
                            json.dumps({"call_id": call_id, "extension": body["extension"]}),
                            qos=1,
                        )
                    )
                    loop.call_later(hold_s, hangup, p, call_id)
                else:
                    if call_id not in final:
                        last_final[0] = t
                    final.setdefault(call_id, topic.rsplit("/", 1)[1])
                    if len(final) >= expected[0] > 0:
                        all_done.set()

        reader = asyncio.create_task(collect())
        if a.get("login", True):
            await asyncio.gather(
                *(login(c, f"{prefix}/{t}/pbx/agent/state", numbers(a["agents"])) for t in tenants)
            )
            await asyncio.sleep(1.0)
        run = uuid.uuid4().hex[:6]

        def send(i: int, at: int) -> None:
            call_id = f"{run}-{i}"
            sched[call_id] = at
            body = {"call_id": call_id, "did": dids[i % len(dids)], "caller_id": "+4930123"}
            tenant = tenants[i % len(tenants)]
            tasks.spawn(c.publish(f"{prefix}/{tenant}/pbx/call/arrived", json.dumps(body), qos=1))

        expected[0] = count
        pacing = await paced(rate, count, send)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(hold_s + a.get("drain_s", 15)):
                await all_done.wait()
        await tasks.drain()
        reader.cancel()
    outcome = _outcome(sched, ring_ns, final, last_final[0])
    return {"rate": rate, **outcome, "publish_failures": tasks.failed, **pacing}


def _outcome(
    sched: dict[str, int], ring_ns: dict[str, int], final: dict[str, str], last_final_ns: int
) -> dict[str, Any]:
    """What became of the calls scheduled at `sched`: counts, `done_s`, arrival->ring."""
    lat = [ring_ns[k] - at for k, at in sched.items() if k in ring_ns]
    completed = sum(1 for k in sched if final.get(k) == "completed")
    first = min(sched.values(), default=0)
    return {
        "calls": len(sched),
        "rung": len(lat),
        "completed": completed,
        "lost": len(sched) - completed,
        "done_s": round((last_final_ns - first) / 1e9, 3) if last_final_ns else None,
        **percentiles(lat),
    }


async def agent_free(a: dict[str, Any]) -> dict[str, Any]:
    """Calls wait (every agent logged out); agents log in one by one, paced: time to their ring."""
    p = f"{a['prefix']}/1"
    agents = numbers(a["agents"])
    waiting = a["agents"] + 10
    tasks = Tasks()
    queued: set[str] = set()
    all_queued = asyncio.Event()
    sched: dict[str, int] = {}
    ring_ns: dict[str, int] = {}
    all_rung = asyncio.Event()
    async with client(a["url"], "pbx") as c:
        for t in ("cmd/ring", "event/call/queued"):
            await c.subscribe(f"{p}/{t}", qos=1)

        async def collect() -> None:
            async for m in c.messages:
                t = now_ns()
                topic = str(m.topic)[len(p) + 1 :]
                body = json.loads(m.payload)
                if topic == "event/call/queued":
                    queued.add(body["call_id"])
                    if len(queued) >= waiting:
                        all_queued.set()
                elif body["extension"] not in ring_ns:
                    ring_ns[body["extension"]] = t
                    # Answer, and keep the call: the agent stays busy.
                    tasks.spawn(
                        c.publish(
                            f"{p}/pbx/call/answered",
                            json.dumps(
                                {"call_id": body["call_id"], "extension": body["extension"]}
                            ),
                            qos=1,
                        )
                    )
                    if len(ring_ns) >= len(agents):
                        all_rung.set()

        reader = asyncio.create_task(collect())
        run = uuid.uuid4().hex[:6]
        for i in range(waiting):
            body = {"call_id": f"{run}-w{i}", "did": "+10000", "caller_id": "+4930123"}
            tasks.spawn(c.publish(f"{p}/pbx/call/arrived", json.dumps(body), qos=1))
        async with asyncio.timeout(60):
            await all_queued.wait()
        await asyncio.sleep(0.5)

        def send(i: int, at: int) -> None:
            sched[agents[i]] = at
            body = {"extension": agents[i], "state": "available"}
            tasks.spawn(c.publish(f"{p}/pbx/agent/state", json.dumps(body), qos=1))

        pacing = await paced(a["rate"], len(agents), send)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(15):
                await all_rung.wait()
        await tasks.drain()
        reader.cancel()
    lat = [ring_ns[k] - at for k, at in sched.items() if k in ring_ns]
    return {
        "rate": a["rate"],
        "waiting": waiting,
        **pacing,
        **percentiles(lat),
        "lost": len(agents) - len(lat),
    }


async def seed_waiting(a: dict[str, Any]) -> dict[str, Any]:
    """Agents paused, then `calls` arrivals; returns once every one is queued."""
    p = f"{a['prefix']}/1"
    tasks = Tasks()
    queued = 0
    done = asyncio.Event()
    started = now_ns()
    async with client(a["url"], "seed") as c:
        await c.subscribe(f"{p}/event/call/queued", qos=1)

        async def collect() -> None:
            nonlocal queued
            async for _ in c.messages:
                queued += 1
                if queued >= a["calls"]:
                    done.set()

        reader = asyncio.create_task(collect())
        await login(c, f"{p}/pbx/agent/state", numbers(a["agents"]), "paused")
        run = uuid.uuid4().hex[:6]
        for i in range(a["calls"]):
            body = {"call_id": f"{run}-s{i}", "did": "+10000", "caller_id": "+4930123"}
            tasks.spawn(c.publish(f"{p}/pbx/call/arrived", json.dumps(body), qos=1))
            if i % SEED_BURST == SEED_BURST - 1:
                await asyncio.sleep(0.05)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(a.get("max_s", 120)):
                await done.wait()
        await tasks.drain()
        reader.cancel()
    return {"queued": queued, "seconds": round((now_ns() - started) / 1e9, 3)}


async def queue_login(a: dict[str, Any]) -> dict[str, Any]:
    """With the daemon down: one agent becomes available (the broker keeps it for the daemon)."""
    async with client(a["url"], "pbx") as c:
        p = f"{a['prefix']}/1"
        await c.publish(
            f"{p}/pbx/agent/state",
            json.dumps({"extension": a["extension"], "state": "available"}),
            qos=1,
        )
    return {"ok": True}


async def watch_start(a: dict[str, Any]) -> dict[str, Any]:
    """When (perf_counter_ns) a live `P/status` online and the first `cmd/ring` arrived.

    Prints a line once subscribed, so the caller starts the daemon only then.
    """
    p = a["prefix"]
    ready_ns = ring_ns = None
    async with client(a["url"], "watch") as c:
        await c.subscribe(f"{p}/status", qos=1)
        await c.subscribe(f"{p}/1/cmd/ring", qos=1)
        print(json.dumps({"subscribed": True}), flush=True)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(a.get("max_s", 120)):
                async for m in c.messages:
                    body = json.loads(m.payload) if m.payload else {}
                    if m.topic.matches(f"{p}/status"):
                        # A live (not retained) "online": this start's, not an old one.
                        if body.get("state") == "online" and not m.retain and ready_ns is None:
                            ready_ns = now_ns()
                    elif ring_ns is None:
                        ring_ns = now_ns()
                    if ready_ns is not None and ring_ns is not None:
                        break
    return {"ready_ns": ready_ns, "ring_ns": ring_ns}


async def wait_online(a: dict[str, Any]) -> dict[str, Any]:
    """Return once the daemon's `P/status` says online."""
    async with client(a["url"], "wait") as c:
        await c.subscribe(f"{a['prefix']}/status", qos=1)
        async with asyncio.timeout(a.get("max_s", 120)):
            async for m in c.messages:
                if m.payload and json.loads(m.payload).get("state") == "online":
                    return {"online": True}
    return {"online": False}


# --- disturbances: another tenant's flood, the admin API, a watcher of rings ---------


async def flood(a: dict[str, Any]) -> dict[str, Any]:
    """Tenant `tenant` publishes as fast as `window` in flight allows, for `seconds`.

    `kind` "bad": payloads that break the contract (not JSON); "valid": arrivals
    to the tenant's DID `did` (no agent there, so they wait in its queue).
    """
    p = f"{a['prefix']}/{a['tenant']}"
    window, bad = a.get("window", 500), a["kind"] == "bad"
    sent = 0
    free = asyncio.Semaphore(window)
    tasks = Tasks()
    run = uuid.uuid4().hex[:6]

    async def one(topic: str, body: bytes) -> None:
        try:
            await c.publish(topic, body, qos=1)
        finally:
            free.release()

    started = now_ns()
    end = started + int(a["seconds"] * 1e9)
    async with client(a["url"], "flood") as c:
        while now_ns() < end:
            await free.acquire()
            if bad:
                topic, body = f"{p}/pbx/call/arrived", b'{"call_id": "x' + str(sent).encode()
            else:
                body = json.dumps({"call_id": f"{run}-f{sent}", "did": a["did"]}).encode()
                topic = f"{p}/pbx/call/arrived"
            tasks.spawn(one(topic, body))
            sent += 1
        await tasks.drain()
    took = (now_ns() - started) / 1e9
    return {"kind": a["kind"], "sent": sent, "seconds": round(took, 2), "per_s": round(sent / took)}


async def api_load(a: dict[str, Any]) -> dict[str, Any]:
    """`requests` admin API requests, `concurrency` at a time, on tenant `tenant`.

    One in two creates an extension (a write that the engine applies), the others
    list extensions and queues (reads).
    """
    import httpx  # noqa: PLC0415 - only this mode needs it

    base, tenant, total = a["api"], a["tenant"], a["requests"]
    headers = {"Authorization": f"Bearer {a['token']}"}
    run = uuid.uuid4().hex[:6]
    latencies: list[int] = []
    statuses: dict[str, int] = {}
    counter = iter(range(total))

    async def worker(http: httpx.AsyncClient) -> None:
        for i in counter:
            t = now_ns()
            if i % 2 == 0:
                body = {"tenant_id": tenant, "number": f"9{run}{i}", "name": f"Bench {i}"}
                response = await http.post("/api/extensions", json=body)
            elif i % 4 == 1:
                response = await http.get("/api/extensions", params={"tenant_id": tenant})
            else:
                response = await http.get("/api/queues", params={"tenant_id": tenant})
            latencies.append(now_ns() - t)
            key = str(response.status_code)
            statuses[key] = statuses.get(key, 0) + 1

    started = now_ns()
    async with httpx.AsyncClient(base_url=base, headers=headers, timeout=60) as http:
        await asyncio.gather(*(worker(http) for _ in range(a["concurrency"])))
    took = (now_ns() - started) / 1e9
    return {
        "requests": total,
        "statuses": statuses,
        "seconds": round(took, 2),
        "request": percentiles(latencies),
    }


async def watch_rings(a: dict[str, Any]) -> dict[str, Any]:
    """Record when (perf_counter_ns) each `cmd/ring` arrived, for `seconds`.

    Prints a line once subscribed, so the caller starts the load only then.
    """
    seen: list[int] = []
    async with client(a["url"], "watch-rings") as c:
        await c.subscribe(f"{a['prefix']}/1/cmd/ring", qos=1)
        print(json.dumps({"subscribed": True}), flush=True)

        async def collect() -> None:
            async for _ in c.messages:
                seen.append(now_ns())

        reader = asyncio.create_task(collect())
        await asyncio.sleep(a["seconds"])
        reader.cancel()
    return {"rings_ns": seen}


MODES: dict[str, Callable[[dict[str, Any]], Coroutine[Any, Any, dict[str, Any]]]] = {
    "wait_online": wait_online,
    "echo_server": echo_server,
    "echo": echo,
    "arrival": arrival,
    "agent_free": agent_free,
    "seed_waiting": seed_waiting,
    "queue_login": queue_login,
    "watch_start": watch_start,
    "flood": flood,
    "api_load": api_load,
    "watch_rings": watch_rings,
}

if __name__ == "__main__":
    args = json.loads(sys.argv[1])
    # The generator's own start-up heap (aiomqtt, paho, asyncio: some 20,000 objects)
    # out of its collector: each full collection walked it, 10-60 ms in which nothing
    # was received, and a pause here is counted as the daemon's latency.
    gc.collect()
    gc.freeze()
    result = asyncio.run(MODES[args["mode"]](args))
    print(json.dumps(result), flush=True)
