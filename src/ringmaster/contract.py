r"""The MQTT wire contract, version 1: payloads <-> engine events and commands.

This module is pure: no I/O and no broker. It turns an inbound MQTT message
(topic and payload bytes) into one of the engine's `PbxEvent`s, and renders each
engine `Command` as the `OutboxMessage` the contract prescribes
(`/work/shared/contract/mqtt-v1.md`; the project's own words are in docs/).

Topics are built from the prefix `P` (setting `mqtt.topic_prefix`) and the
tenant id `T`: the PBX publishes on `P/T/pbx/...`, ringmaster on `P/T/cmd/...`,
`P/T/event/...`, `P/T/state/queue/Q`, `P/T/error` and `P/status`.

Time format: every payload ringmaster publishes carries `at`, the moment it
happened, as ISO 8601 in UTC with milliseconds and a `Z` suffix, e.g.
`2026-11-25T09:31:17.123Z` (sub-millisecond digits are truncated).

Additions to the contract (it may be extended by adding, never by changing):

- Commands (`cmd/*`) carry `at` too, the time ringmaster decided them.
- `event/agent/state` carries `reason` (the PBX's pause reason, or "").
- `P/T/error` carries `at`; the offending payload is echoed under `payload`.
- Rejected as well (docs/mqtt.md, "Errors"): a payload with a duplicate key,
  `NaN`, `Infinity` or a number out of range; a string, key or value at any
  depth, that is not Unicode text (a lone surrogate escape such as `\udfff`);
  a control character in `call_id` or `extension`. Control characters in
  display text are replaced by spaces.
- `P/error` (no tenant) reports a message whose topic has no readable tenant
  id, since such a message cannot be attributed to a `P/T/error` topic.
- The MQTT last will on `P/status` is `{"state": "offline"}` without `at`: the
  broker sends it at a time ringmaster cannot know when it registers it.
- `pbx/call/arrived` takes optional `skills` the call requires; the PBX may
  publish `pbx/call/callback_requested`.
- Commands `cmd/announce` and `cmd/originate`; events `event/call/overflowed`
  and `event/call/callback_requested`; the queue snapshot's service-level,
  overflow and callback figures.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Annotated, Any, Final, TypeAlias

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
)
from pydantic_core import PydanticCustomError

from ringmaster.engine.commands import (
    Announce,
    CancelRing,
    ClearQueueSnapshot,
    Command,
    Originate,
    PublishAgentState,
    PublishCallAbandoned,
    PublishCallAnswered,
    PublishCallbackRequested,
    PublishCallCompleted,
    PublishCallOverflowed,
    PublishCallQueued,
    PublishCallRejected,
    PublishCallRinging,
    PublishQueueSnapshot,
    RejectInput,
    Ring,
    RouteToExtension,
    RouteToHangup,
)
from ringmaster.engine.events import (
    AgentPresenceChanged,
    CallArrived,
    CallbackRequested,
    CallHungUp,
    DeviceStateChanged,
    PbxEvent,
    RingAnswered,
    RingFailed,
)
from ringmaster.engine.model import (
    CallId,
    DeviceState,
    Presence,
    RingFailure,
    TenantId,
)
from ringmaster.fields import SkillMap
from ringmaster.store import OutboxMessage

__all__ = [
    "MAX_PAYLOAD_BYTES",
    "ContractError",
    "format_time",
    "inbound_filters",
    "internal_error",
    "parse_inbound",
    "parse_tenant",
    "render",
    "render_error",
    "render_internal_error",
    "status_message",
    "will_payload",
]

#: Inbound payloads larger than this are rejected unread (a PBX message is a
#: few hundred bytes; this guards the JSON parser, not the contract).
MAX_PAYLOAD_BYTES: Final = 64 * 1024
#: A JSON payload echoed on an error topic is kept whole below this size.
ECHO_MAX_CHARS: Final = 1024
#: Optional display fields (caller name, hangup cause, ...) are cut to this length
#: rather than rejected: a long caller name must not cost the caller their call.
_FREE_TEXT_MAX: Final = 256
_TOPIC_ECHO_MAX: Final = 256

_JSON_SEPARATORS: Final = (",", ":")
# A tenant id is a positive decimal integer without sign, spaces or leading zeros.
# ASCII only: int() would also accept " 7" or Arabic-Indic digits. 18 digits keep
# it inside SQLite's signed 64-bit INTEGER.
_TENANT_RE: Final = re.compile(r"[1-9][0-9]{0,17}")
# A lone surrogate (U+D800..U+DFFF) is not a Unicode scalar value: UTF-8 cannot encode
# it, so neither SQLite, nor a UTF-8 payload, nor a UTF-8 log can take it. A strictly
# decoded UTF-8 payload holds one only through a JSON escape such as \udfff.
_SURROGATE: Final = re.compile("[\ud800-\udfff]")
# C0 and C1 control characters and DEL: invisible in logs and the admin API, and a NUL
# ends a string for SQLite's own functions (`length`, the sqlite3 shell) and for C.
_CONTROL: Final = re.compile("[\x00-\x1f\x7f-\x9f]")
_UNPRINTABLE: Final = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff]")
#: The `error` of a message whose handling failed inside ringmaster, not for its content.
INTERNAL_ERROR: Final = "internal error: see ringmaster's log"


class ContractError(Exception):
    """An inbound message does not follow the contract; nothing in the engine changes.

    Attributes:
        tenant_id: The tenant read from the topic, or None when the topic has none.
        topic: The topic the message came on.
        error: A readable reason that names the field, e.g.
            ``priority: Input should be less than or equal to 9``.
        payload: What may safely be echoed of the payload: the JSON value itself when
            it is small, else a truncated string.
    """

    def __init__(self, tenant_id: int | None, topic: str, error: str, payload: Any) -> None:
        super().__init__(f"{topic}: {error}")
        self.tenant_id = tenant_id
        self.topic = topic
        self.error = error
        self.payload = payload


# --- inbound payload models ---------------------------------------------------


def _free_text(value: Any) -> Any:
    # Optional text fields: a missing or null value means "", an overlong one is cut
    # and control characters become spaces, rather than the call being refused for its
    # caller's name. Non-strings still fail the str check afterwards.
    if value is None:
        return ""
    if isinstance(value, str):
        return _CONTROL.sub(" ", value[:_FREE_TEXT_MAX])
    return value


def _identifier(value: str) -> str:
    # An id the PBX matches on is never display text: a control character in it is a
    # PBX bug, and a NUL would cut it short for SQLite's functions and C readers.
    found = _CONTROL.search(value)
    if found is not None:
        raise PydanticCustomError(
            "control_character",
            "must not contain control characters (found {char} at position {position})",
            {"char": _visible(found.group()), "position": found.start()},
        )
    return value


CallIdField = Annotated[
    str, Field(strict=True, min_length=1, max_length=64), AfterValidator(_identifier)
]
ExtensionField = Annotated[
    str, Field(strict=True, min_length=1, max_length=20), AfterValidator(_identifier)
]
#: A ring's id as `cmd/ring` gave it (addition): opaque to the PBX, echoed back.
RingIdField = Annotated[
    str, Field(strict=True, min_length=1, max_length=64), AfterValidator(_identifier)
]
DidField = Annotated[str, Field(strict=True, max_length=32, pattern=r"^\+?[0-9]+$")]
#: A number to call back: written like a DID.
NumberField = DidField
# strict: JSON true, 1.5 and "1" are not priorities (pydantic would coerce them).
PriorityField = Annotated[int, Field(strict=True, ge=0, le=9)]
FreeText = Annotated[str, BeforeValidator(_free_text), Field(strict=True)]


class _Inbound(BaseModel):
    # Contract: "Unknown extra fields are ignored."
    model_config = ConfigDict(extra="ignore", frozen=True)


class CallArrivedPayload(_Inbound):
    """`P/T/pbx/call/arrived`."""

    # strict for `skills` (the other fields are strict already): the admin API and
    # provisioning take skill levels strictly, and the same map must not mean more
    # here, e.g. "5" or true as a level.
    model_config = ConfigDict(strict=True)

    call_id: CallIdField
    did: DidField
    caller_id: FreeText = ""
    caller_name: FreeText = ""
    priority: PriorityField = 0
    skills: SkillMap = Field(default_factory=dict)


class CallAnsweredPayload(_Inbound):
    """`P/T/pbx/call/answered`."""

    call_id: CallIdField
    extension: ExtensionField
    ring_id: RingIdField | None = None  # addition


class RingFailedPayload(_Inbound):
    """`P/T/pbx/call/ring_failed`."""

    call_id: CallIdField
    extension: ExtensionField
    reason: RingFailure
    ring_id: RingIdField | None = None  # addition


class CallHangupPayload(_Inbound):
    """`P/T/pbx/call/hangup`."""

    call_id: CallIdField
    cause: FreeText = ""


class CallbackRequestedPayload(_Inbound):
    """`P/T/pbx/call/callback_requested` (addition)."""

    call_id: CallIdField
    number: NumberField


class AgentStatePayload(_Inbound):
    """`P/T/pbx/agent/state`."""

    extension: ExtensionField
    state: Presence
    reason: FreeText = ""


class ExtensionStatePayload(_Inbound):
    """`P/T/pbx/extension/state`."""

    extension: ExtensionField
    state: DeviceState


def _call_arrived(tenant: TenantId, p: CallArrivedPayload) -> PbxEvent:
    return CallArrived(
        tenant_id=tenant,
        call_id=CallId(p.call_id),
        did=p.did,
        caller_id=p.caller_id,
        caller_name=p.caller_name,
        priority=p.priority,
        skills=dict(p.skills),
    )


def _ring_answered(tenant: TenantId, p: CallAnsweredPayload) -> PbxEvent:
    return RingAnswered(
        tenant_id=tenant, call_id=CallId(p.call_id), extension=p.extension, ring_id=p.ring_id
    )


def _ring_failed(tenant: TenantId, p: RingFailedPayload) -> PbxEvent:
    return RingFailed(
        tenant_id=tenant,
        call_id=CallId(p.call_id),
        extension=p.extension,
        reason=p.reason,
        ring_id=p.ring_id,
    )


def _call_hung_up(tenant: TenantId, p: CallHangupPayload) -> PbxEvent:
    return CallHungUp(tenant_id=tenant, call_id=CallId(p.call_id), cause=p.cause)


def _callback_requested(tenant: TenantId, p: CallbackRequestedPayload) -> PbxEvent:
    return CallbackRequested(tenant_id=tenant, call_id=CallId(p.call_id), number=p.number)


def _agent_state(tenant: TenantId, p: AgentStatePayload) -> PbxEvent:
    return AgentPresenceChanged(
        tenant_id=tenant, extension=p.extension, presence=p.state, reason=p.reason
    )


def _extension_state(tenant: TenantId, p: ExtensionStatePayload) -> PbxEvent:
    return DeviceStateChanged(tenant_id=tenant, extension=p.extension, state=p.state)


_Converter: TypeAlias = tuple[type[_Inbound], Callable[[TenantId, Any], PbxEvent]]

#: The inbound topics, after `P/T/pbx/`, with their payload model and engine event.
INBOUND: Final[Mapping[str, _Converter]] = {
    "call/arrived": (CallArrivedPayload, _call_arrived),
    "call/answered": (CallAnsweredPayload, _ring_answered),
    "call/ring_failed": (RingFailedPayload, _ring_failed),
    "call/hangup": (CallHangupPayload, _call_hung_up),
    "call/callback_requested": (CallbackRequestedPayload, _callback_requested),
    "agent/state": (AgentStatePayload, _agent_state),
    "extension/state": (ExtensionStatePayload, _extension_state),
}


def inbound_filters(prefix: str) -> list[str]:
    """The topic filters the daemon subscribes to (QoS 1): every tenant's PBX topics."""
    return [f"{prefix}/+/pbx/#"]


def parse_tenant(prefix: str, topic: str) -> int | None:
    """The tenant id `T` of a topic `P/T/...`, or None when it has no valid one."""
    head = prefix + "/"
    if not topic.startswith(head):
        return None
    segment = topic[len(head) :].split("/", 1)[0]
    return int(segment) if _TENANT_RE.fullmatch(segment) else None


def parse_inbound(prefix: str, topic: str, payload: bytes) -> PbxEvent:
    """Turn an inbound message on `P/T/pbx/...` into the engine's event.

    Args:
        prefix: The topic prefix `P`.
        topic: The topic the message came on.
        payload: The raw payload.

    Returns:
        The engine event, with `tenant_id` taken from the topic.

    Raises:
        ContractError: The topic or the payload does not follow the contract.
    """
    tenant_id = parse_tenant(prefix, topic)
    if tenant_id is None:
        raise ContractError(
            None,
            topic,
            f"topic: expected {prefix}/T/pbx/... with T a positive integer tenant id",
            _echo(payload),
        )
    rest = topic[len(prefix) + 1 :].split("/", 2)
    kind = rest[2] if len(rest) == 3 and rest[1] == "pbx" else None  # noqa: PLR2004
    converter = INBOUND.get(kind) if kind is not None else None
    if converter is None:
        raise ContractError(
            tenant_id,
            topic,
            "topic: unknown inbound topic; expected one of "
            + ", ".join(f"pbx/{name}" for name in INBOUND),
            _echo(payload),
        )
    if len(payload) > MAX_PAYLOAD_BYTES:
        raise ContractError(
            tenant_id,
            topic,
            f"payload: larger than {MAX_PAYLOAD_BYTES} bytes",
            _echo(payload),
        )
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError:
        raise ContractError(tenant_id, topic, "payload: not valid UTF-8", _echo(payload)) from None
    try:
        data = _loads(text)
    except _RefusedJsonError as exc:
        raise ContractError(tenant_id, topic, f"payload: {exc}", _echo(payload)) from None
    # RecursionError: deeply nested arrays; ValueError also covers over-long integers.
    except (ValueError, RecursionError) as exc:
        raise ContractError(
            tenant_id, topic, f"payload: not valid JSON ({_json_reason(exc)})", _echo(payload)
        ) from None
    if not isinstance(data, dict):
        raise ContractError(
            tenant_id,
            topic,
            f"payload: expected a JSON object, got {_json_type(data)}",
            _echo_json(data, text),
        )
    # Only a JSON escape can put a lone surrogate in text decoded as strict UTF-8, and
    # every such escape starts so: most payloads skip the walk.
    if "\\ud" in text or "\\uD" in text:
        bad = _not_unicode(data)
        if bad is not None:
            raise ContractError(tenant_id, topic, bad, _echo_json(data, text))
    model, convert = converter
    try:
        parsed = model.model_validate(data)
    except ValidationError as exc:
        raise ContractError(tenant_id, topic, _describe(exc), _echo_json(data, text)) from None
    return convert(TenantId(tenant_id), parsed)


class _RefusedJsonError(ValueError):
    """JSON that Python would read but the contract does not take; says why."""


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # Python keeps the last of a repeated key, other readers the first: refuse to guess.
    value = dict(pairs)
    if len(value) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise _RefusedJsonError(f"duplicate key {_quoted(key)}")
            seen.add(key)
    return value


def _no_constant(name: str) -> Any:
    # Python reads NaN and Infinity; JSON (RFC 8259) has no such numbers, and echoing
    # them back would publish invalid JSON.
    raise _RefusedJsonError(f"not valid JSON ({name} is not a JSON number)")


def _finite(literal: str) -> float:
    number = float(literal)
    if not math.isfinite(number):
        raise _RefusedJsonError(f"not valid JSON (number {literal[:32]} is out of range)")
    return number


def _loads(text: str) -> Any:
    return json.loads(
        text, object_pairs_hook=_object, parse_constant=_no_constant, parse_float=_finite
    )


def _not_unicode(data: dict[str, Any]) -> str | None:
    """The error naming the first string (key or value, at any depth) that is not Unicode."""
    # Iterative: the payload may be nested as deep as the JSON parser allowed.
    stack: list[tuple[str, Any]] = [("", data)]
    while stack:
        path, value = stack.pop()
        if isinstance(value, str):
            found = _SURROGATE.search(value)
            if found is not None:
                return f"{path}: not valid Unicode text ({_lone(found.group())})"
        elif isinstance(value, dict):
            items = []
            for key, item in value.items():
                found = _SURROGATE.search(key)
                if found is not None:
                    return (
                        f"{path or 'payload'}: key {_quoted(key)} is not valid Unicode text "
                        f"({_lone(found.group())})"
                    )
                items.append((f"{path}.{key}" if path else key, item))
            stack.extend(reversed(items))
        elif isinstance(value, list):
            stack.extend(reversed([(f"{path}.{n}", item) for n, item in enumerate(value)]))
    return None


def _lone(char: str) -> str:
    return f"a lone surrogate, {_visible(char)}"


def _visible(text: str) -> str:
    r"""Text with control characters and lone surrogates written as escapes, e.g. \u0000."""
    return _UNPRINTABLE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


def _quoted(key: str) -> str:
    return f'"{_visible(key[:_TOPIC_ECHO_MAX])}"'


def _describe(exc: ValidationError) -> str:
    parts = []
    for error in exc.errors(include_url=False):
        field = _visible(".".join(str(part) for part in error["loc"])) or "payload"
        parts.append(f"{field}: {error['msg']}")
    return "; ".join(parts)


def _json_reason(exc: BaseException) -> str:
    if isinstance(exc, json.JSONDecodeError):
        return f"{exc.msg} at line {exc.lineno} column {exc.colno}"
    if isinstance(exc, RecursionError):
        return "nested too deeply"
    return str(exc)


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    return "an array"


def _echo_json(value: Any, text: str) -> Any:
    """A parsed JSON value as it may be echoed: whole when small, else truncated text.

    `text` is the JSON it was read from. A lone surrogate in the value is escaped when
    the error is rendered (`_message`).
    """
    try:
        dumped = _dumps(value)
    except (ValueError, RecursionError):  # nested deeper than writing JSON allows here
        return _truncate(text)
    if len(dumped) <= ECHO_MAX_CHARS:
        return value
    return dumped[:ECHO_MAX_CHARS] + "..."


def _echo(payload: bytes) -> Any:
    """Raw bytes as they may be echoed: parsed JSON if it is, else a truncated string."""
    head = payload[: MAX_PAYLOAD_BYTES + 1]
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        # Not UTF-8: the repr shows the bytes without sending invalid UTF-8 onwards.
        return _truncate(repr(head[:ECHO_MAX_CHARS]))
    try:
        return _echo_json(_loads(text), text)
    except (ValueError, RecursionError):
        return _truncate(text)


def _truncate(text: str) -> str:
    return text if len(text) <= ECHO_MAX_CHARS else text[:ECHO_MAX_CHARS] + "..."


# --- outbound -------------------------------------------------------------------


def format_time(at: float) -> str:
    """Seconds since the Unix epoch as the contract's `at`: `2026-11-25T09:31:17.123Z`."""
    stamp = datetime.fromtimestamp(at, tz=UTC).isoformat(timespec="milliseconds")
    return stamp.removesuffix("+00:00") + "Z"


def _dumps(value: Any) -> str:
    # ensure_ascii=False: payloads are UTF-8 (contract), so names stay readable.
    return json.dumps(value, separators=_JSON_SEPARATORS, ensure_ascii=False)


def _message(topic: str, payload: Mapping[str, Any], *, retain: bool = False) -> OutboxMessage:
    text = _dumps(payload)
    try:
        data = text.encode("utf-8")
    except UnicodeEncodeError:
        # A lone surrogate, only ever in an echo of what was received, has no UTF-8: it
        # is written as the text of its escape (the six characters \udfff), so every
        # JSON parser reads the payload. Outside strings the JSON has none to replace.
        data = _SURROGATE.sub(_escaped, text).encode("utf-8")
    return OutboxMessage(topic=topic, payload=data, retain=retain)


def _escaped(match: re.Match[str]) -> str:
    # A JSON-escaped backslash, then "udfff": the text of the escape, not the character.
    return f"\\\\u{ord(match.group()):04x}"


def _seconds(value: float) -> float:
    return round(value, 3)


# One case per inbound event class, as `render` below; mypy checks it is exhaustive.
def _event_topic_payload(  # noqa: PLR0911
    prefix: str, event: PbxEvent
) -> tuple[str, dict[str, Any]]:
    """The inbound topic and payload an engine event came from (for error echoes)."""
    base = f"{prefix}/{event.tenant_id}/pbx"
    match event:
        case CallArrived():
            return f"{base}/call/arrived", {
                "call_id": event.call_id,
                "did": event.did,
                "caller_id": event.caller_id,
                "caller_name": event.caller_name,
                "priority": event.priority,
                "skills": dict(event.skills),
            }
        case RingAnswered():
            return f"{base}/call/answered", {
                "call_id": event.call_id,
                "extension": event.extension,
                **_ring_id(event.ring_id),
            }
        case RingFailed():
            return f"{base}/call/ring_failed", {
                "call_id": event.call_id,
                "extension": event.extension,
                "reason": event.reason.value,
                **_ring_id(event.ring_id),
            }
        case CallHungUp():
            return f"{base}/call/hangup", {"call_id": event.call_id, "cause": event.cause}
        case CallbackRequested():
            return f"{base}/call/callback_requested", {
                "call_id": event.call_id,
                "number": event.number,
            }
        case AgentPresenceChanged():
            return f"{base}/agent/state", {
                "extension": event.extension,
                "state": event.presence.value,
                "reason": event.reason,
            }
        case DeviceStateChanged():
            return f"{base}/extension/state", {
                "extension": event.extension,
                "state": event.state.value,
            }


def _ring_id(ring_id: str | None) -> dict[str, str]:
    """The optional `ring_id` field (addition): absent when there is none."""
    return {"ring_id": ring_id} if ring_id else {}


# One case per command class, read as a table; mypy checks the match is exhaustive
# (a command class without a case is a "missing return" error).
def render(  # noqa: PLR0911, PLR0912
    prefix: str, command: Command, *, now: float | None = None
) -> OutboxMessage:
    """Render an engine command as the message the contract prescribes.

    Args:
        prefix: The topic prefix `P`.
        command: Any engine command.
        now: The time for the `at` of commands that carry none of their own (the PBX
            commands `Ring`, `CancelRing`, `RouteTo*`, `Announce`, `Originate`); None
            reads the wall clock.
            Monitoring events use their own `at`.

    Returns:
        The topic, compact JSON payload and retain flag to publish at QoS 1.
    """
    tenant = f"{prefix}/{command.tenant_id}" if not isinstance(command, RejectInput) else ""
    match command:
        case Ring():
            return _message(
                f"{tenant}/cmd/ring",
                {
                    "call_id": command.call_id,
                    "extension": command.extension,
                    "queue_id": command.queue_id,
                    "timeout": command.timeout,
                    "caller_id": command.caller_id,
                    **_ring_id(command.ring_id),
                    "at": _now(now),
                },
            )
        case CancelRing():
            return _message(
                f"{tenant}/cmd/cancel_ring",
                {
                    "call_id": command.call_id,
                    "extension": command.extension,
                    "reason": command.reason.value,
                    **_ring_id(command.ring_id),
                    "at": _now(now),
                },
            )
        case RouteToExtension():
            return _message(
                f"{tenant}/cmd/route",
                {
                    "call_id": command.call_id,
                    "target": {"type": "extension", "extension": command.extension},
                    "at": _now(now),
                },
            )
        case RouteToHangup():
            return _message(
                f"{tenant}/cmd/route",
                {
                    "call_id": command.call_id,
                    "target": {"type": "hangup", "reason": command.reason},
                    "at": _now(now),
                },
            )
        case Announce():
            return _message(
                f"{tenant}/cmd/announce",
                {
                    "call_id": command.call_id,
                    "queue_id": command.queue_id,
                    "position": command.position,
                    "estimated_wait_s": command.estimated_wait_s,
                    "at": _now(now),
                },
            )
        case Originate():
            return _message(
                f"{tenant}/cmd/originate",
                {
                    "call_id": command.call_id,
                    "extension": command.extension,
                    "number": command.number,
                    "at": _now(now),
                },
            )
        case PublishCallQueued():
            return _message(
                f"{tenant}/event/call/queued",
                {
                    "call_id": command.call_id,
                    "queue_id": command.queue_id,
                    "did": command.did,
                    "caller_id": command.caller_id,
                    "position": command.position,
                    "at": format_time(command.at),
                },
            )
        case PublishCallRinging():
            return _message(
                f"{tenant}/event/call/ringing",
                {
                    "call_id": command.call_id,
                    "queue_id": command.queue_id,
                    "extension": command.extension,
                    **_ring_id(command.ring_id),
                    "at": format_time(command.at),
                },
            )
        case PublishCallAnswered():
            return _message(
                f"{tenant}/event/call/answered",
                {
                    "call_id": command.call_id,
                    "queue_id": command.queue_id,
                    "extension": command.extension,
                    "wait_s": _seconds(command.wait_s),
                    "at": format_time(command.at),
                },
            )
        case PublishCallAbandoned():
            return _message(
                f"{tenant}/event/call/abandoned",
                {
                    "call_id": command.call_id,
                    "queue_id": command.queue_id,
                    "wait_s": _seconds(command.wait_s),
                    "at": format_time(command.at),
                },
            )
        case PublishCallCompleted():
            return _message(
                f"{tenant}/event/call/completed",
                {
                    "call_id": command.call_id,
                    "queue_id": command.queue_id,
                    "extension": command.extension,
                    "talk_s": _seconds(command.talk_s),
                    "at": format_time(command.at),
                },
            )
        case PublishCallRejected():
            return _message(
                f"{tenant}/event/call/rejected",
                {
                    "call_id": command.call_id,
                    "did": command.did,
                    "reason": command.reason,
                    "at": format_time(command.at),
                },
            )
        case PublishCallOverflowed():
            return _message(
                f"{tenant}/event/call/overflowed",
                {
                    "call_id": command.call_id,
                    "queue_id": command.queue_id,
                    "reason": command.reason,
                    "wait_s": _seconds(command.wait_s),
                    "target": _overflow_target(command),
                    "at": format_time(command.at),
                },
            )
        case PublishCallbackRequested():
            return _message(
                f"{tenant}/event/call/callback_requested",
                {
                    "call_id": command.call_id,
                    "queue_id": command.queue_id,
                    "number": command.number,
                    "position": command.position,
                    "at": format_time(command.at),
                },
            )
        case PublishAgentState():
            return _message(
                f"{tenant}/event/agent/state",
                {
                    "extension": command.extension,
                    "state": command.state.value,
                    "reason": command.reason,
                    "at": format_time(command.at),
                },
            )
        case PublishQueueSnapshot():
            snapshot = dataclasses.asdict(command.snapshot)
            snapshot["longest_wait_s"] = _seconds(command.snapshot.longest_wait_s)
            if command.snapshot.service_level_pct is not None:
                snapshot["service_level_pct"] = round(command.snapshot.service_level_pct, 1)
            snapshot["at"] = format_time(command.at)
            return _message(
                f"{tenant}/state/queue/{command.snapshot.queue_id}", snapshot, retain=True
            )
        case ClearQueueSnapshot():
            # An empty retained payload deletes the retained message (MQTT 3.3.1.3).
            return OutboxMessage(
                topic=f"{tenant}/state/queue/{command.queue_id}", payload=b"", retain=True
            )
        case RejectInput():
            topic, payload = _event_topic_payload(prefix, command.event)
            return _message(
                f"{prefix}/{command.event.tenant_id}/error",
                {
                    "topic": topic,
                    "error": command.error,
                    "payload": payload,
                    "at": format_time(command.at),
                },
            )


def _overflow_target(command: PublishCallOverflowed) -> dict[str, Any]:
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
        "topic": _truncate(error.topic) if len(error.topic) > _TOPIC_ECHO_MAX else error.topic,
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
        echo = _echo(payload)
    except Exception:  # the answer goes out whatever the echo does
        echo = "(not echoed)"
    return ContractError(parse_tenant(prefix, topic), topic, INTERNAL_ERROR, echo)


def status_message(prefix: str, online: bool, *, now: float | None = None) -> OutboxMessage:
    """The retained `P/status` message: `{"state": "online"|"offline", "at": ...}`."""
    return _message(
        f"{prefix}/status",
        {"state": "online" if online else "offline", "at": _now(now)},
        retain=True,
    )


def will_payload() -> bytes:
    """The MQTT last will's payload for `P/status` (retained, QoS 1).

    It has no `at`: the broker sends it when the connection dies, a time unknown
    when the will is registered.
    """
    return _dumps({"state": "offline"}).encode("utf-8")
