"""The engine alone: no I/O, a virtual clock, per-event cost and memory by size.

`python -m bench.engine_bench '{"cycles": 2000, ...}'` prints one JSON line.
Each figure is the mean wall time of `Engine.handle` per event over a steady
cycle of events that keeps the size constant; `take_changes` runs (untimed)
after every event, as the service does after every turn.
"""

from __future__ import annotations

import cProfile
import gc
import io
import json
import pstats
import sys
import time
import tracemalloc
from typing import Any

from ringmaster.engine import events as ev
from ringmaster.engine.core import Engine
from ringmaster.engine.model import (
    CallId,
    DidRoute,
    Extension,
    ExtensionId,
    Presence,
    QueueConfig,
    QueueId,
    QueueTarget,
    Tenant,
    TenantId,
)

T = TenantId(1)
ns = time.perf_counter_ns

#: From this many agents in a queue, a full-life cycle takes long enough that a
#: tenth of the cycles gives a stable mean.
BIG_QUEUE = 100_000


class Clock:
    """The virtual clock: one millisecond passes per event."""

    def __init__(self) -> None:
        self.now = 1_000_000.0

    def tick(self) -> float:
        """Advance by one millisecond; the new time."""
        self.now += 0.001
        return self.now


def build(agents: int, queues: int = 1, *, login: bool = True) -> tuple[Engine, Clock]:
    """`agents` extensions spread over `queues` leastrecent queues, one DID per queue."""
    e, c = Engine(), Clock()
    e.handle(ev.TenantSaved(Tenant(T, "bench")), c.now)
    for i in range(agents):
        e.handle(ev.ExtensionSaved(Extension(ExtensionId(i + 1), T, str(10000 + i))), c.now)
    for q in range(queues):
        qid = QueueId(q + 1)
        e.handle(
            ev.QueueSaved(QueueConfig(qid, T, f"Q{q}", str(600 + q), "leastrecent", timeout=30)),
            c.now,
        )
        e.handle(ev.DidRouteSaved(DidRoute(T, f"+1000{q}", QueueTarget(qid))), c.now)
        for i in range(q, agents, queues):
            e.handle(ev.AgentEnrolled(qid, ExtensionId(i + 1)), c.now)
    if login:
        for i in range(agents):
            e.handle(ev.AgentPresenceChanged(T, str(10000 + i), Presence.AVAILABLE), c.now)
    e.take_changes()
    return e, c


class Timer:
    """Feeds events to the engine, timing `Engine.handle` alone, by kind of event."""

    def __init__(self, engine: Engine, clock: Clock) -> None:
        self.e, self.c = engine, clock
        self.by_kind: dict[str, list[int]] = {}
        self.measuring = False
        self.rings: list[Any] = []

    def __call__(self, kind: str, event: Any) -> list[Any]:
        """Handle `event` one tick later; its commands. Timed once `measuring` is set."""
        now = self.c.tick()
        t = ns()
        out = self.e.handle(event, now)
        d = ns() - t
        self.e.take_changes()
        if self.measuring:
            self.by_kind.setdefault(kind, []).append(d)
        return out

    def summary(self) -> dict[str, Any]:
        """Mean microseconds per event, overall and by kind."""
        every = [d for ds in self.by_kind.values() for d in ds]
        return {
            "us_per_event": round(sum(every) / len(every) / 1e3, 2),
            "by_event_us": {k: round(sum(v) / len(v) / 1e3, 2) for k, v in self.by_kind.items()},
            "events": len(every),
        }


def ring_of(out: list[Any], call_id: str) -> str:
    """The extension rung for `call_id` among the commands `out`."""
    for cmd in out:
        if type(cmd).__name__ == "Ring" and cmd.call_id == call_id:
            return str(cmd.extension)
    raise RuntimeError(f"no ring for {call_id}")


def full_life(timer: Timer, cycles: int, queues: int = 1, tag: str = "c") -> None:
    """`cycles` calls, each arrived, answered and hung up, round-robin over the queues' DIDs."""
    for i in range(cycles):
        if i == cycles // 5:
            timer.measuring = True  # the first fifth warms up
        call = CallId(f"{tag}{i}")
        out = timer("arrived", ev.CallArrived(T, call, f"+1000{i % queues}"))
        ext = ring_of(out, call)
        timer("answered", ev.RingAnswered(T, call, ext))
        timer("hangup", ev.CallHungUp(T, call))


def scale_agents(sizes: list[int], cycles: int) -> dict[str, Any]:
    """Per-event cost of full-life calls by the number of agents in one queue."""
    out: dict[str, Any] = {}
    for n in sizes:
        e, c = build(n)
        t = Timer(e, c)
        full_life(t, cycles if n < BIG_QUEUE else max(200, cycles // 10))
        out[str(n)] = t.summary()
    return out


def scale_queues(sizes: list[int], cycles: int) -> dict[str, Any]:
    """Per-event cost of full-life calls by the number of queues (one agent each)."""
    out: dict[str, Any] = {}
    for q in sizes:
        e, c = build(q, q)  # one agent per queue
        t = Timer(e, c)
        full_life(t, cycles, q)
        out[str(q)] = t.summary()
    return out


def scale_waiting(sizes: list[int], cycles: int) -> dict[str, Any]:
    """Per-event cost by the number of calls waiting in one queue.

    One agent, busy; `w` calls waiting. Cycle: a call arrives, the agent's call ends
    (it is rung for the best waiting call), it answers. The line stays at `w`.
    """
    out: dict[str, Any] = {}
    for w in sizes:
        e, c = build(1)
        t = Timer(e, c)
        first = CallId("busy")
        ring = t("arrived", ev.CallArrived(T, first, "+10000"))
        t("answered", ev.RingAnswered(T, first, ring_of(ring, first)))
        for i in range(w):
            e.handle(ev.CallArrived(T, CallId(f"w{i}"), "+10000"), c.tick())
        e.take_changes()
        connected = first
        for i in range(cycles):
            if i == cycles // 5:
                t.measuring = True
            t("arrived", ev.CallArrived(T, CallId(f"n{i}"), "+10000"))
            rang = t("hangup", ev.CallHungUp(T, connected))
            offered = next(x for x in rang if type(x).__name__ == "Ring")
            connected = CallId(offered.call_id)
            t("answered", ev.RingAnswered(T, connected, str(offered.extension)))
        out[str(w)] = t.summary()
    return out


def scale_ringing(sizes: list[int], cycles: int, agents: int = 200) -> dict[str, Any]:
    """Per-event cost by the number of calls ringing an agent in one leastrecent queue.

    The daemon's arrival benchmark: `agents` agents, calls answered as soon as the
    answer comes back, so `r` calls ring at any time while other agents are free,
    and every event offers the queue's waiting calls again. Cycle: a call arrives
    (it rings a free agent), the oldest ringing call is answered, the call before
    it hangs up (its agent is free again). `r` calls ring throughout.
    """
    out: dict[str, Any] = {}
    for r in sizes:
        e, c = build(agents)
        t = Timer(e, c)
        ringing: list[tuple[CallId, str]] = []
        for i in range(r):
            call = CallId(f"r{i}")
            ringing.append((call, ring_of(t("arrived", ev.CallArrived(T, call, "+10000")), call)))
        connected: CallId | None = None
        for i in range(cycles):
            if i == cycles // 5:
                t.measuring = True
            call = CallId(f"n{i}")
            ringing.append((call, ring_of(t("arrived", ev.CallArrived(T, call, "+10000")), call)))
            answered, extension = ringing.pop(0)
            t("answered", ev.RingAnswered(T, answered, extension))
            if connected is not None:
                t("hangup", ev.CallHungUp(T, connected))
            connected = answered
        out[str(r)] = t.summary()
    return out


def enrol_cost(sizes: list[int]) -> dict[str, Any]:
    """Start-up replays one AgentEnrolled per enrolment: seconds for a queue of n."""
    out: dict[str, Any] = {}
    for n in sizes:
        e, c = Engine(), Clock()
        e.handle(ev.TenantSaved(Tenant(T, "b")), c.now)
        e.handle(
            ev.QueueSaved(QueueConfig(QueueId(1), T, "Q", "600", "leastrecent", timeout=30)), c.now
        )
        for i in range(n):
            e.handle(ev.ExtensionSaved(Extension(ExtensionId(i + 1), T, str(10000 + i))), c.now)
        t = time.perf_counter()
        for i in range(n):
            e.handle(ev.AgentEnrolled(QueueId(1), ExtensionId(i + 1)), c.now)
        out[str(n)] = round(time.perf_counter() - t, 3)
    return out


def memory(count: int) -> dict[str, Any]:
    """Tracemalloc bytes per waiting call and per logged-in agent (engine objects only)."""
    gc.collect()
    tracemalloc.start()
    e, c = build(1)
    first = CallId("busy")
    ring = e.handle(ev.CallArrived(T, first, "+10000"), c.tick())
    e.handle(ev.RingAnswered(T, first, ring_of(ring, first)), c.tick())
    e.take_changes()
    gc.collect()
    before = tracemalloc.get_traced_memory()[0]
    for i in range(count):
        e.handle(
            ev.CallArrived(T, CallId(f"waiting-call-{i:08d}"), "+10000", "+4930123456"), c.tick()
        )
    e.take_changes()
    gc.collect()
    per_call = (tracemalloc.get_traced_memory()[0] - before) / count
    del e
    gc.collect()
    base_e, c = build(0, 1, login=False)
    gc.collect()
    before = tracemalloc.get_traced_memory()[0]
    for i in range(count):
        base_e.handle(
            ev.ExtensionSaved(Extension(ExtensionId(i + 1), T, str(10000 + i), f"Agent {i}")), c.now
        )
    for i in range(count):
        base_e.handle(ev.AgentEnrolled(QueueId(1), ExtensionId(i + 1)), c.now)
    for i in range(count):
        base_e.handle(ev.AgentPresenceChanged(T, str(10000 + i), Presence.AVAILABLE), c.tick())
    base_e.take_changes()
    gc.collect()
    per_agent = (tracemalloc.get_traced_memory()[0] - before) / count
    tracemalloc.stop()
    return {
        "count": count,
        "bytes_per_waiting_call": round(per_call),
        "bytes_per_agent": round(per_agent),
    }


def profile(agents: int, waiting: int, cycles: int) -> dict[str, str]:
    """CProfile of the two worst cases: the top functions by their own time."""
    out: dict[str, str] = {}
    for name, run in (
        (f"agents_{agents}", lambda: full_life(Timer(*build(agents)), cycles)),
        (f"waiting_{waiting}", lambda: scale_waiting([waiting], cycles)),
    ):
        prof = cProfile.Profile()
        prof.enable()
        run()
        prof.disable()
        text = io.StringIO()
        pstats.Stats(prof, stream=text).sort_stats("tottime").print_stats(12)
        out[name] = "\n".join(line for line in text.getvalue().splitlines() if line.strip())[-3000:]
    return out


if __name__ == "__main__":
    a = json.loads(sys.argv[1])
    cyc = a["cycles"]
    # Each part runs only when asked for (`{"cycles": 2000, "ringing": [100]}`: that one).
    result: dict[str, Any] = {}
    if "agents" in a:
        result["agents"] = scale_agents(a["agents"], cyc)
    if "queues" in a:
        result["queues"] = scale_queues(a["queues"], cyc)
    if "waiting" in a:
        result["waiting"] = scale_waiting(a["waiting"], cyc)
    if "ringing" in a:
        result["ringing"] = scale_ringing(a["ringing"], cyc)
    if "enrol" in a:
        result["enrol_s"] = enrol_cost(a["enrol"])
    if "memory_count" in a:
        result["memory"] = memory(a["memory_count"])
    if a.get("profile"):
        result["profile"] = profile(a["agents"][-1], a["waiting"][-1], 200)
    print(json.dumps(result), flush=True)
