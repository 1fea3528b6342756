"""Outbound: the engine's commands and ringmaster's errors as the messages to publish."""

from __future__ import annotations

import dataclasses
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from ringmaster.contract.errors import (
    INTERNAL_ERROR,
    SURROGATE,
    TOPIC_ECHO_MAX,
    ContractError,
    dumps,
    truncate,
)
from ringmaster.contract.inbound import echo, parse_tenant
from ringmaster.engine import commands as cmd
from ringmaster.engine import events as ev


@dataclass(frozen=True, slots=True)
class OutboxMessage:
    """An MQTT message to publish: it waits in the store's outbox until the broker has it."""

    topic: str
    payload: bytes
    retain: bool = False


def format_time(at: float) -> str:
    """Seconds since the Unix epoch as the contract's `at`: `2026-11-25T09:31:17.123Z`."""
    global _last_formatted  # noqa: PLW0603 - a one-entry cache
    last = _last_formatted
    if last[0] == at:
        return last[1]
    stamp = datetime.fromtimestamp(at, tz=UTC).isoformat(timespec="milliseconds")
    text = stamp.removesuffix("+00:00") + "Z"
    # One tuple, swapped whole: a reader on another thread sees a matching pair.
    _last_formatted = (at, text)
    return text


# A turn renders all its messages at one `now` (and its events mostly carry that
# `at`): the last time formatted is usually the next one asked for.
_last_formatted: tuple[float, str] = (float("nan"), "")


def _message(topic: str, payload: Mapping[str, Any], *, retain: bool = False) -> OutboxMessage:
    text = dumps(payload)
    try:
        data = text.encode("utf-8")
    except UnicodeEncodeError:
        # A lone surrogate, only ever in an echo of what was received, has no UTF-8: it
        # is written as the text of its escape (the six characters \udfff), so every
        # JSON parser reads the payload. Outside strings the JSON has none to replace.
        data = SURROGATE.sub(_escaped, text).encode("utf-8")
    return OutboxMessage(topic=topic, payload=data, retain=retain)


def _escaped(match: re.Match[str]) -> str:
    # A JSON-escaped backslash, then "udfff": the text of the escape, not the character.
    return f"\\\\u{ord(match.group()):04x}"


def _seconds(value: float) -> float:
    return round(value, 3)


# One case per inbound event class, as `render` below; mypy checks it is exhaustive.
def _event_topic_payload(  # noqa: PLR0911
    prefix: str, event: ev.PbxEvent
) -> tuple[str, dict[str, Any]]:
    """The inbound topic and payload an engine event came from (for error echoes)."""
    base = f"{prefix}/{event.tenant_id}/pbx"
    match event:
        case ev.CallArrived():
            fields = _copy(event, "call_id", "did", "caller_id", "caller_name", "priority")
            return f"{base}/call/arrived", fields | {"skills": dict(event.skills)}
        case ev.RingAnswered():
            fields = _copy(event, "call_id", "extension") | _ring_id(event.ring_id)
            return f"{base}/call/answered", fields
        case ev.RingFailed():
            fields = _copy(event, "call_id", "extension") | {"reason": event.reason.value}
            return f"{base}/call/ring_failed", fields | _ring_id(event.ring_id)
        case ev.CallHungUp():
            return f"{base}/call/hangup", _copy(event, "call_id", "cause")
        case ev.CallbackRequested():
            return f"{base}/call/callback_requested", _copy(event, "call_id", "number")
        case ev.AgentPresenceChanged():
            fields = {"extension": event.extension, "state": event.presence.value}
            return f"{base}/agent/state", fields | {"reason": event.reason}
        case ev.DeviceStateChanged():
            return f"{base}/extension/state", {
                "extension": event.extension,
                "state": event.state.value,
            }


def _ring_id(ring_id: str | None) -> dict[str, str]:
    """The optional `ring_id` field (addition): absent when there is none."""
    return {"ring_id": ring_id} if ring_id else {}


# One case per command class, read as a table: the topic, then the payload's fields
# in the contract's order (a field named as the command's attribute is copied from it).
# mypy checks the match is exhaustive (a class without a case is a "missing return").
def render(  # noqa: PLR0911, PLR0912, PLR0915
    prefix: str, command: cmd.Command, *, now: float | None = None
) -> OutboxMessage:
    """Render an engine command as the message the contract prescribes.

    Args:
        prefix: The topic prefix `P`.
        command: Any engine command.
        now: The time for the `at` of commands that carry none of their own (the PBX
            commands `Ring`, `CancelRing`, `RouteTo*`, `Announce`, `Originate`,
            `SetAgentState`); None reads the wall clock.
            Monitoring events use their own `at`.

    Returns:
        The topic, compact JSON payload and retain flag to publish at QoS 1.
    """
    tenant = f"{prefix}/{command.tenant_id}" if not isinstance(command, cmd.RejectInput) else ""
    match command:
        case cmd.Ring():
            fields = _copy(command, "call_id", "extension", "queue_id", "timeout", "caller_id")
            return _command(tenant, "ring", now, fields | _ring_id(command.ring_id))
        case cmd.CancelRing():
            fields = _copy(command, "call_id", "extension") | {"reason": command.reason.value}
            return _command(tenant, "cancel_ring", now, fields | _ring_id(command.ring_id))
        case cmd.RouteToExtension():
            target = {"type": "extension", "extension": command.extension}
            return _command(tenant, "route", now, {"call_id": command.call_id, "target": target})
        case cmd.RouteToHangup():
            target = {"type": "hangup", "reason": command.reason}
            return _command(tenant, "route", now, {"call_id": command.call_id, "target": target})
        case cmd.Announce():
            fields = _copy(command, "call_id", "queue_id", "position", "estimated_wait_s")
            return _command(tenant, "announce", now, fields)
        case cmd.Originate():
            fields = _copy(command, "call_id", "extension", "number")
            return _command(tenant, "originate", now, fields)
        case cmd.SetAgentState():
            fields = {"extension": command.extension, "state": command.state.value}
            return _command(tenant, "agent_state", now, fields | {"reason": command.reason})
        case cmd.PublishCallQueued():
            fields = _copy(command, "call_id", "queue_id", "did", "caller_id", "position")
            return _event(tenant, "call/queued", command.at, fields)
        case cmd.PublishCallRinging():
            fields = _copy(command, "call_id", "queue_id", "extension")
            return _event(tenant, "call/ringing", command.at, fields | _ring_id(command.ring_id))
        case cmd.PublishCallAnswered():
            fields = _copy(command, "call_id", "queue_id", "extension")
            fields["wait_s"] = _seconds(command.wait_s)
            return _event(tenant, "call/answered", command.at, fields)
        case cmd.PublishCallAbandoned():
            fields = _copy(command, "call_id", "queue_id") | {"wait_s": _seconds(command.wait_s)}
            return _event(tenant, "call/abandoned", command.at, fields)
        case cmd.PublishCallCompleted():
            fields = _copy(command, "call_id", "queue_id", "extension")
            fields["talk_s"] = _seconds(command.talk_s)
            return _event(tenant, "call/completed", command.at, fields)
        case cmd.PublishCallRejected():
            fields = _copy(command, "call_id", "did", "reason")
            return _event(tenant, "call/rejected", command.at, fields)
        case cmd.PublishCallOverflowed():
            fields = _copy(command, "call_id", "queue_id", "reason")
            fields["wait_s"] = _seconds(command.wait_s)
            fields["target"] = _overflow_target(command)
            return _event(tenant, "call/overflowed", command.at, fields)
        case cmd.PublishCallbackRequested():
            fields = _copy(command, "call_id", "queue_id", "number", "position")
            return _event(tenant, "call/callback_requested", command.at, fields)
        case cmd.PublishAgentState():
            fields = {"extension": command.extension, "state": command.state.value}
            fields["reason"] = command.reason
            return _event(tenant, "agent/state", command.at, fields)
        case cmd.PublishQueueSnapshot():
            snapshot = {name: getattr(command.snapshot, name) for name in _SNAPSHOT_FIELDS}
            snapshot["longest_wait_s"] = _seconds(command.snapshot.longest_wait_s)
            if command.snapshot.service_level_pct is not None:
                snapshot["service_level_pct"] = round(command.snapshot.service_level_pct, 1)
            snapshot["at"] = format_time(command.at)
            return _message(
                f"{tenant}/state/queue/{command.snapshot.queue_id}", snapshot, retain=True
            )
        case cmd.ClearQueueSnapshot():
            # An empty retained payload deletes the retained message (MQTT 3.3.1.3).
            return OutboxMessage(
                topic=f"{tenant}/state/queue/{command.queue_id}", payload=b"", retain=True
            )
        case cmd.RejectInput():
            topic, payload = _event_topic_payload(prefix, command.event)
            fields = {"topic": topic, "error": command.error, "payload": payload}
            fields["at"] = format_time(command.at)
            return _message(f"{prefix}/{command.event.tenant_id}/error", fields)


# A queue snapshot's fields, in order. Copied one level deep (not `dataclasses.asdict`,
# which deep-copies each value): the payload is only serialised, never changed.
_SNAPSHOT_FIELDS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(cmd.QueueSnapshot))


def _copy(source: cmd.Command | ev.PbxEvent, *names: str) -> dict[str, Any]:
    """The attributes `names` of a command or event, as payload fields of the same names."""
    return {name: getattr(source, name) for name in names}


def _command(tenant: str, name: str, now: float | None, fields: dict[str, Any]) -> OutboxMessage:
    """A command to the PBX on `P/T/cmd/NAME`, with `at` (when ringmaster decided it) last."""
    return _message(f"{tenant}/cmd/{name}", {**fields, "at": _now(now)})


def _event(tenant: str, name: str, at: float, fields: dict[str, Any]) -> OutboxMessage:
    """A monitoring event on `P/T/event/NAME`, with its own `at` last."""
    return _message(f"{tenant}/event/{name}", {**fields, "at": format_time(at)})


def _overflow_target(command: cmd.PublishCallOverflowed) -> dict[str, Any]:
    # Shaped like cmd/route's target, plus the queue type that cmd/route never needs.
    if command.to_queue is not None:
        return {"type": "queue", "queue_id": command.to_queue}
    if command.to_extension is not None:
        return {"type": "extension", "extension": command.to_extension}
    return {"type": "hangup"}


def _now(now: float | None) -> str:
    return format_time(time.time() if now is None else now)


def render_error(prefix: str, error: ContractError, *, now: float | None = None) -> OutboxMessage:
    """Render a rejected inbound message on `P/T/error`.

    When the topic carries no readable tenant id the error goes to `P/error`, an
    addition to the contract: it cannot be attributed to any tenant's topic.

    Args:
        prefix: The topic prefix `P`.
        error: The rejection.
        now: The time of the rejection; None reads the wall clock.

    Returns:
        The message to publish (QoS 1, not retained).
    """
    topic = f"{prefix}/error" if error.tenant_id is None else f"{prefix}/{error.tenant_id}/error"
    body = {
        "topic": truncate(error.topic) if len(error.topic) > TOPIC_ECHO_MAX else error.topic,
        "error": error.error,
        "payload": error.payload,
        "at": _now(now),
    }
    try:
        return _message(topic, body)
    except (TypeError, ValueError, RecursionError):
        # An echo that cannot be written back must not cost the answer itself.
        return _message(topic, {**body, "payload": "(not echoed)"})


def render_internal_error(
    prefix: str, topic: str, payload: bytes, *, now: float | None = None
) -> OutboxMessage:
    """Answer a message whose handling failed inside ringmaster (a bug, not its content).

    Like `render_error`, on `P/T/error` (`P/error` without a readable tenant id), with
    the `error` `INTERNAL_ERROR` and the payload echoed as for a rejection. Never raises.

    Args:
        prefix: The topic prefix `P`.
        topic: The topic the message came on.
        payload: Its raw payload.
        now: The time of the answer; None reads the wall clock.

    Returns:
        The message to publish (QoS 1, not retained).
    """
    return render_error(prefix, internal_error(prefix, topic, payload), now=now)


def internal_error(prefix: str, topic: str, payload: bytes) -> ContractError:
    """The refusal of a message whose handling failed inside ringmaster; never raises."""
    try:
        echoed = echo(payload)
    except Exception:  # the answer goes out whatever the echo does
        echoed = "(not echoed)"
    return ContractError(parse_tenant(prefix, topic), topic, INTERNAL_ERROR, echoed, "internal")


def is_monitoring(prefix: str, topic: str) -> bool:
    """Whether `topic` is a monitoring message, `P/T/event/...` or `P/T/state/...`.

    Not a command (`P/T/cmd/...`), an error or a status: what `mqtt.monitoring_qos`
    may publish at QoS 0 (docs/mqtt.md).
    """
    if not topic.startswith(f"{prefix}/"):
        return False
    tenant, _, rest = topic[len(prefix) + 1 :].partition("/")
    return tenant.isdigit() and rest.startswith(("event/", "state/"))


def status_topic(prefix: str, shard: int | None = None) -> str:
    """`P/status`, or a cluster shard's own `P/status/shard/<n>` (an addition to the contract)."""
    return f"{prefix}/status" if shard is None else f"{prefix}/status/shard/{shard}"


def status_message(
    prefix: str, online: bool, *, now: float | None = None, shard: int | None = None
) -> OutboxMessage:
    """The retained `P/status` message: `{"state": "online"|"offline", "at": ...}`.

    With `shard`, the same on the shard's own topic (`status_topic`).
    """
    return _message(
        status_topic(prefix, shard),
        {"state": "online" if online else "offline", "at": _now(now)},
        retain=True,
    )


def will_payload() -> bytes:
    """The MQTT last will's payload for `P/status` (retained, QoS 1).

    It has no `at`: the broker sends it when the connection dies, a time unknown
    when the will is registered.
    """
    return dumps({"state": "offline"}).encode("utf-8")
