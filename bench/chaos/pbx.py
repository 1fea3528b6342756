"""The PBX model: calls, agents and rings as the PBX knows them, and what it saw.

The PBX is the truth about bridges: it bridges a call to the agent whose
`answered` it sent while that ring was live (before it received `cmd/cancel_ring`
for it and before its own ring timer fired), and only the first such answer for
a call; another agent picking up later is refused by the PBX itself. Everything
ringmaster publishes is recorded here with its receive time, and the checks that
depend on order (a ring for an agent who rings for another call, a ring after
ringmaster itself said the call ended) are counted the moment the message arrives.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from bench.chaos.link import Link
from bench.chaos.plan import Arrival, Plan, QueueSpec, reaction

#: Final states of a call as ringmaster reports them (overflow to a queue is not final).
FINAL = ("completed", "abandoned", "rejected", "overflowed")
#: Two commands whose `at` differ by less than this were decided in the same turn.
SAME_TURN_S = 0.005


def at_epoch(at: object) -> float | None:
    """The `at` field (ISO 8601 UTC) as epoch seconds."""
    if not isinstance(at, str):
        return None
    try:
        return datetime.fromisoformat(at).timestamp()
    except ValueError:
        return None


@dataclass(eq=False)
class Ring:
    """One `cmd/ring` as the PBX rang it."""

    call: Call
    extension: str
    queue_id: object
    ring_id: object
    at: object
    received: float
    timeout: float
    state: str = "live"  # live, answered, failed, cancelled, caller_gone, refused, pickup_refused
    ended: float | None = None
    end_reason: str = ""
    #: ringmaster's time for the end (a cancel's `at`), else the PBX's.
    ended_at: float | None = None
    #: The `at` of ringmaster's `cancel_ring` `timeout` for it, even if the PBX ended it first.
    timeout_at: float | None = None

    def end(self, state: str, reason: str, now: float, at: float | None = None) -> None:
        """The ring is over at the PBX, for `reason`."""
        self.state, self.end_reason, self.ended = state, reason, now
        self.ended_at = at if at is not None else now


@dataclass(eq=False)
class Call:
    """One call the PBX offered, and everything ringmaster said about it."""

    arrival: Arrival
    state: str = "new"  # new, waiting, bridged, completed, abandoned, routed
    bridged_to: str | None = None
    hangup_sent: float | None = None
    rings: list[Ring] = field(default_factory=list)
    queued: bool = False
    overflowed: bool = False
    answered: list[str] = field(default_factory=list)
    finals: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    #: ringmaster showed it knew the call ended or was answered (a final event,
    #: `answered`, a `caller_hangup` cancel, an error about our hangup).
    daemon_done: bool = False
    seen_at: set[tuple[str, object, object]] = field(default_factory=set)


@dataclass(eq=False)
class Agent:
    """An extension as the PBX knows it."""

    tenant: int
    extension: str
    presence: str = "logged_out"
    device: str = "idle"
    ring: Ring | None = None
    talking: Call | None = None
    ring_count: Counter[str] = field(default_factory=Counter)

    def live_ring(self, now: float) -> Ring | None:
        """The ring that is on at the PBX now, if any."""
        r = self.ring
        if r is None or r.state != "live" or now > r.received + r.timeout:
            return None
        return r


class Pbx:
    """The PBX model on one MQTT link; run `start`, then `offer` calls, then `finish`."""

    def __init__(self, plan: Plan, prefix: str, url: str, *, also: tuple[str, ...] = ()) -> None:
        self.plan, self.prefix = plan, prefix
        self.loop = asyncio.get_running_loop()
        self.by_did: dict[tuple[int, str], QueueSpec] = {(q.tenant, q.did): q for q in plan.queues}
        self.agents: dict[tuple[int, str], Agent] = {}
        for spec in plan.queues:
            for a in spec.agents:
                self.agents.setdefault((spec.tenant, a), Agent(spec.tenant, a))
        self.retry_by_queue_id: dict[tuple[int, object], int] = {}
        self.calls: dict[tuple[int, str], Call] = {}
        self.counts: Counter[str] = Counter()
        self.examples: dict[str, list[str]] = {}
        self.errors_seen = 0
        self.statuses: list[tuple[float, str, bool]] = []
        #: Process start times (epoch) waiting for their first ring, and the delays found.
        self.open_starts: list[float] = []
        self.first_ring_s: list[float] = []
        self.canary: asyncio.Event = asyncio.Event()
        self.canary_id = f"canary-{plan.seed}"
        self.stopping = False
        subscriptions = (
            f"{prefix}/+/cmd/#",
            f"{prefix}/+/event/call/#",
            f"{prefix}/+/error",
            f"{prefix}/error",
            f"{prefix}/status",
            *also,
        )
        self.link = Link(
            url, "pbx", subscriptions=subscriptions, loop=self.loop, handler=self._received
        )

    # --- bookkeeping ------------------------------------------------------------------

    def note(self, what: str, example: str) -> None:
        """Count one occurrence of `what`, keeping a few examples for the report."""
        self.counts[what] += 1
        kept = self.examples.setdefault(what, [])
        if len(kept) < 5:
            kept.append(example)

    def send(self, tenant: int, kind: str, payload: dict[str, Any]) -> None:
        """Publish `P/T/pbx/<kind>`."""
        self.link.publish(f"{self.prefix}/{tenant}/pbx/{kind}", json.dumps(payload))

    def later(self, delay: float, fn: Any, *args: Any) -> None:
        """Run `fn(*args)` on the loop after `delay` seconds."""
        self.loop.call_later(max(0.0, delay), fn, *args)

    # --- what the PBX does -----------------------------------------------------------

    def start(self) -> None:
        """Connect (blocking briefly) and log every agent in."""
        self.link.start()

    def login_all(self) -> None:
        """Every agent logs in; each then pauses and comes back now and then."""
        for agent in self.agents.values():
            agent.presence = "available"
            self.send(
                agent.tenant, "agent/state", {"extension": agent.extension, "state": "available"}
            )
            self._schedule_presence(agent, 0)

    def _schedule_presence(self, agent: Agent, n: int) -> None:
        rng = self.plan.rng("presence", agent.tenant, agent.extension, n)
        self.later(rng.expovariate(1 / 30.0), self._presence_change, agent, n)

    def _presence_change(self, agent: Agent, n: int) -> None:
        if self.stopping:
            return
        rng = self.plan.rng("presence-kind", agent.tenant, agent.extension, n)
        now = time.time()
        # Agents change presence only between calls, as people do at a phone.
        if agent.live_ring(now) is None and agent.talking is None and agent.presence == "available":
            roll = rng.random()
            away = rng.uniform(1.0, 5.0)
            if roll < 0.7:
                self._set_presence(agent, "paused", "break")
                self.later(away, self._set_presence, agent, "available", "")
            elif roll < 0.85:
                self._set_presence(agent, "logged_out", "")
                self.later(away, self._set_presence, agent, "available", "")
            else:
                self._set_device(agent, "unavailable")
                self.later(away, self._set_device, agent, "idle")
        self._schedule_presence(agent, n + 1)

    def _set_presence(self, agent: Agent, state: str, reason: str) -> None:
        agent.presence = state
        payload = {"extension": agent.extension, "state": state}
        if reason:
            payload["reason"] = reason
        self.send(agent.tenant, "agent/state", payload)

    def _set_device(self, agent: Agent, state: str) -> None:
        agent.device = state
        self.send(agent.tenant, "extension/state", {"extension": agent.extension, "state": state})

    def offer(self, arrival: Arrival) -> None:
        """A call arrives: publish it, and let its caller give up after their patience."""
        call = Call(arrival)
        self.calls[(arrival.tenant, arrival.call_id)] = call
        body = {"call_id": arrival.call_id, "did": arrival.did, "caller_id": "5550123"}
        if arrival.overtaken:
            # A PBX client that, after an outage, sends the hangup of a caller who has
            # already gone before it gets round to the arrival.
            call.state = "abandoned"
            call.hangup_sent = time.time()
            self.send(
                arrival.tenant, "call/hangup", {"call_id": arrival.call_id, "cause": "caller"}
            )
            self.send(arrival.tenant, "call/arrived", body)
            return
        call.state = "waiting"
        self.send(arrival.tenant, "call/arrived", body)
        self.later(arrival.patience_s, self._abandon, call)

    def _abandon(self, call: Call) -> None:
        if call.state != "waiting":
            return
        now = time.time()
        call.state = "abandoned"
        call.hangup_sent = now
        for ring in call.rings:
            if ring.state == "live":
                ring.end("caller_gone", "caller_hangup", now)
        self.send(
            call.arrival.tenant, "call/hangup", {"call_id": call.arrival.call_id, "cause": "caller"}
        )

    def hang_up_waiting(self) -> None:
        """End of the day: every caller still waiting gives up now."""
        self.stopping = True
        for call in list(self.calls.values()):
            self._abandon(call)

    def _ring_reply(self, ring: Ring, kind: str, **extra: Any) -> None:
        payload: dict[str, Any] = {
            "call_id": ring.call.arrival.call_id,
            "extension": ring.extension,
        }
        if ring.ring_id is not None:
            payload["ring_id"] = ring.ring_id
        payload.update(extra)
        self.send(ring.call.arrival.tenant, f"call/{kind}", payload)

    def _react(self, ring: Ring, kind: str) -> None:
        now = time.time()
        if ring.state != "live":
            return
        call, agent = ring.call, self.agents[(ring.call.arrival.tenant, ring.extension)]
        if kind == "answer":
            if agent.presence != "available" or agent.device != "idle" or agent.talking:
                return  # a paused agent, or a phone that is not free, lets it ring
            if call.state != "waiting":
                # ringall: someone else picked up first; the PBX hangs up this leg itself.
                ring.end("pickup_refused", "pbx", now)
                return
            ring.end("answered", "answered", now)
            call.state, call.bridged_to = "bridged", ring.extension
            agent.talking = call
            if agent.ring is ring:
                agent.ring = None
            self._ring_reply(ring, "answered")
            self._set_device(agent, "in_use")
            self.later(call.arrival.talk_s, self._talk_ends, call, agent)
            return
        ring.end("failed", kind, now)
        self._ring_reply(ring, "ring_failed", reason=kind)

    def _pbx_timer(self, ring: Ring) -> None:
        if ring.state == "live":
            ring.end("failed", "no_answer", time.time())
            self._ring_reply(ring, "ring_failed", reason="no_answer")

    def _talk_ends(self, call: Call, agent: Agent) -> None:
        now = time.time()
        call.state = "completed"
        call.hangup_sent = now
        agent.talking = None
        self.send(
            call.arrival.tenant, "call/hangup", {"call_id": call.arrival.call_id, "cause": "normal"}
        )
        self._set_device(agent, "idle")

    # --- what ringmaster says ------------------------------------------------------

    def _received(self, topic: str, payload: bytes | bytearray, received: float) -> None:  # noqa: PLR0911
        # One early return per kind of message that is not about one of our calls.
        rest = topic[len(self.prefix) + 1 :]
        try:
            body = json.loads(payload) if payload else {}
        except ValueError:
            self.note("unreadable_outbound", topic)
            return
        if rest == "status":
            state = body.get("state") if isinstance(body, dict) else None
            self.statuses.append((received, str(state), False))
            return
        if rest == "error":
            self.errors_seen += 1
            return
        tenant_s, _, kind = rest.partition("/")
        try:
            tenant = int(tenant_s)
        except ValueError:
            return
        if kind == "error":
            self.errors_seen += 1
            self._error(tenant, body)
            return
        if not isinstance(body, dict):
            return
        call = self.calls.get((tenant, str(body.get("call_id"))))
        if call is None:
            if kind == "cmd/ring":
                self.note("rings_for_unknown_calls", f"{tenant}/{body.get('call_id')}")
            return
        key = (kind, body.get("at"), body.get("extension"))
        if key in call.seen_at:
            self.counts["repeated_messages"] += 1  # at least once: an identical repeat
            return
        call.seen_at.add(key)
        self._about_call(call, tenant, kind, body, received)

    def _about_call(
        self, call: Call, tenant: int, kind: str, body: dict[str, Any], received: float
    ) -> None:
        if kind == "cmd/ring":
            self._ring(call, body, received)
        elif kind == "cmd/cancel_ring":
            self._cancel(call, body, received)
        elif kind == "cmd/route":
            self._route(call, body, received)
        elif kind == "event/call/queued":
            call.queued = True
            if not call.overflowed:
                spec = self.by_did.get((tenant, call.arrival.did))
                if spec is not None:
                    self.retry_by_queue_id[(tenant, body.get("queue_id"))] = spec.retry
        elif kind == "event/call/answered":
            call.answered.append(str(body.get("extension")))
            call.daemon_done = True
        elif kind.startswith("event/call/"):
            name = kind.rsplit("/", 1)[1]
            target = body.get("target")
            if name == "overflowed" and isinstance(target, dict) and target.get("type") == "queue":
                call.overflowed = True
                return
            if name in FINAL:
                call.finals.append((name, body))
                call.daemon_done = True

    def _error(self, tenant: int, body: Any) -> None:
        if not isinstance(body, dict):
            return
        echoed = body.get("payload")
        if not isinstance(echoed, dict):
            return
        call_id = str(echoed.get("call_id"))
        if call_id == self.canary_id:
            self.canary.set()
            return
        call = self.calls.get((tenant, call_id))
        if call is None:
            return
        topic = str(body.get("topic", ""))
        if topic.endswith("/call/hangup"):
            call.daemon_done = True  # it has seen our hangup, whatever it made of it
        elif topic.endswith("/call/answered") and call.bridged_to == echoed.get("extension"):
            self.note("errors_for_bridged_answers", f"{call_id}: {body.get('error')}")

    def _ring(self, call: Call, body: dict[str, Any], received: float) -> None:
        tenant = call.arrival.tenant
        extension = str(body.get("extension"))
        at = at_epoch(body.get("at"))
        if at is not None:
            for start in [s for s in self.open_starts if at >= s]:
                # The first ring a new process decided (a repeat from the outbox has an older `at`).
                self.first_ring_s.append(received - start)
                self.open_starts.remove(start)
        label = f"{tenant}/{call.arrival.call_id}@{extension}"
        agent = self.agents.get((tenant, extension))
        if agent is None:
            self.note("rings_for_unknown_extensions", label)
            return
        timeout = float(body.get("timeout") or 0)
        ring = Ring(
            call,
            extension,
            body.get("queue_id"),
            body.get("ring_id"),
            body.get("at"),
            received,
            timeout,
        )
        call.rings.append(ring)
        if call.arrival.overtaken or call.daemon_done:
            # ringmaster had already said the call was over (or answered), or it was
            # hung up before it arrived: nobody should be rung for it any more.
            ring.end("refused", "call_ended", received)
            self.note("rings_for_ended_calls", label)
            return
        if call.state != "waiting":
            # The caller is gone or talking; ringmaster has not heard yet (a race).
            ring.end("refused", "call_not_waiting", received)
            return
        self._check_agent(agent, call, ring, label, received)
        self._check_retry(call, ring, at, label)
        agent.ring = ring
        if agent.talking is not None:
            # The phone is in use: the PBX says so at once.
            self.later(0.05, self._react, ring, "busy")
            return
        n = agent.ring_count[call.arrival.call_id]
        agent.ring_count[call.arrival.call_id] += 1
        r = reaction(self.plan, tenant, call.arrival.call_id, extension, n=n, timeout=timeout)
        self.later(r.after_s, self._react, ring, r.kind)
        self.later(timeout * r.pbx_timer, self._pbx_timer, ring)

    def _check_agent(self, agent: Agent, call: Call, ring: Ring, label: str, now: float) -> None:
        """An agent rung for two calls at once: a live ring for another, or a reported call."""
        live = agent.live_ring(now)
        if live is not None and live.call is not call:
            self.note(
                "agents_rung_for_two_calls", f"{label} ringing for {live.call.arrival.call_id}"
            )
        elif live is not None:
            live.end("cancelled", "replaced", now)
        talking = agent.talking
        if talking is not None and talking is not call:
            if agent.extension in talking.answered:
                self.note(
                    "agents_rung_for_two_calls", f"{label} talking on {talking.arrival.call_id}"
                )
            else:
                # ringmaster has not heard of that answer yet: it crossed our ring.
                self.counts["rings_crossing_an_answer"] += 1

    def _check_retry(self, call: Call, ring: Ring, at: float | None, label: str) -> None:
        """A ring in the very turn that timed out the same agent's ring for the call.

        In a queue with a `retry` pause, an agent whose ring for a call just timed
        out has been tried in this round; ringing them again in the same instant
        skips the pause. Only ringmaster's own times (the `at` of both commands)
        are compared: a re-ring at the end of a pause that began earlier is fine.
        """
        retry = self.retry_by_queue_id.get((call.arrival.tenant, ring.queue_id), 0)
        if not retry or at is None:
            return
        for r in reversed(call.rings[:-1]):
            if r.extension != ring.extension or r.queue_id != ring.queue_id:
                continue
            if r.timeout_at is not None and at - r.timeout_at < SAME_TURN_S:
                self.note("rerung_as_ring_timed_out", f"{label} {at - r.timeout_at:.3f}s")
            return

    def _cancel(self, call: Call, body: dict[str, Any], received: float) -> None:
        extension = str(body.get("extension"))
        reason = str(body.get("reason"))
        ring_id = body.get("ring_id")
        for ring in reversed(call.rings):
            if ring.extension != extension or (ring_id is not None and ring.ring_id != ring_id):
                continue
            if reason == "timeout":
                ring.timeout_at = at_epoch(body.get("at"))
            if ring.state == "live":
                ring.end("cancelled", reason, received, at_epoch(body.get("at")))
            elif ring.state == "answered" and reason != "answered_elsewhere":
                self.counts["cancels_of_bridged_rings"] += 1
            break
        if reason == "caller_hangup":
            call.daemon_done = True

    def _route(self, call: Call, body: dict[str, Any], received: float) -> None:
        call.daemon_done = True
        if call.state == "bridged":
            self.note("routes_of_bridged_calls", call.arrival.call_id)
            return
        if call.state == "waiting":
            call.state = "routed"
        for ring in call.rings:
            if ring.state == "live":
                ring.end("caller_gone", "routed", received)

    # --- the end -----------------------------------------------------------------

    def settled(self) -> bool:
        """Every call has ended at the PBX and ringmaster has said how."""
        for call in self.calls.values():
            if call.state in ("waiting", "bridged"):
                return False
            if not call.finals and not (call.arrival.overtaken and not call.queued):
                return False
        return True

    def send_canary(self) -> None:
        """A hangup for a call nobody knows: a live daemon answers it on the error topic."""
        self.canary.clear()
        self.send(1, "call/hangup", {"call_id": self.canary_id})
