"""Inbound: the PBX's payloads, read strictly, as the engine's events."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Mapping
from typing import Annotated, Any, Final, TypeAlias

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, ValidationError
from pydantic_core import PydanticCustomError

from ringmaster.contract.errors import (
    CONTROL,
    ECHO_MAX_CHARS,
    MAX_PAYLOAD_BYTES,
    SURROGATE,
    ContractError,
    dumps,
    quoted,
    truncate,
    visible,
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
from ringmaster.engine.model import CallId, DeviceState, Presence, RingFailure, TenantId
from ringmaster.options.fields import SkillMap

#: Optional display fields (caller name, hangup cause, ...) are cut to this length
#: rather than rejected: a long caller name must not cost the caller their call.
_FREE_TEXT_MAX: Final = 256
# A tenant id is a positive decimal integer without sign, spaces or leading zeros.
# ASCII only: int() would also accept " 7" or Arabic-Indic digits. 18 digits keep
# it inside SQLite's signed 64-bit INTEGER.
_TENANT_RE: Final = re.compile(r"[1-9][0-9]{0,17}")


def _free_text(value: Any) -> Any:
    # Optional text fields: a missing or null value means "", an overlong one is cut
    # and control characters become spaces, rather than the call being refused for its
    # caller's name. Non-strings still fail the str check afterwards.
    if value is None:
        return ""
    if isinstance(value, str):
        return CONTROL.sub(" ", value[:_FREE_TEXT_MAX])
    return value


def _identifier(value: str) -> str:
    # An id the PBX matches on is never display text: a control character in it is a
    # PBX bug, and a NUL would cut it short for SQLite's functions and C readers.
    found = CONTROL.search(value)
    if found is not None:
        raise PydanticCustomError(
            "control_character",
            "must not contain control characters (found {char} at position {position})",
            {"char": visible(found.group()), "position": found.start()},
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
            echo(payload),
            "topic",
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
            echo(payload),
            "topic",
        )
    if len(payload) > MAX_PAYLOAD_BYTES:
        raise ContractError(
            tenant_id,
            topic,
            f"payload: larger than {MAX_PAYLOAD_BYTES} bytes",
            echo(payload),
            "too_large",
        )
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError:
        raise ContractError(
            tenant_id, topic, "payload: not valid UTF-8", echo(payload), "malformed"
        ) from None
    try:
        data = _loads(text)
    except _RefusedJsonError as exc:
        raise ContractError(
            tenant_id, topic, f"payload: {exc}", echo(payload), "malformed"
        ) from None
    # RecursionError: deeply nested arrays; ValueError also covers over-long integers.
    except (ValueError, RecursionError) as exc:
        raise ContractError(
            tenant_id,
            topic,
            f"payload: not valid JSON ({_json_reason(exc)})",
            echo(payload),
            "malformed",
        ) from None
    if not isinstance(data, dict):
        raise ContractError(
            tenant_id,
            topic,
            f"payload: expected a JSON object, got {_json_type(data)}",
            _echo_json(data, text),
            "malformed",
        )
    # Only a JSON escape can put a lone surrogate in text decoded as strict UTF-8, and
    # every such escape starts so: most payloads skip the walk.
    if "\\ud" in text or "\\uD" in text:
        bad = _not_unicode(data)
        if bad is not None:
            raise ContractError(tenant_id, topic, bad, _echo_json(data, text), "malformed")
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
                raise _RefusedJsonError(f"duplicate key {quoted(key)}")
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
            found = SURROGATE.search(value)
            if found is not None:
                return f"{path}: not valid Unicode text ({_lone(found.group())})"
        elif isinstance(value, dict):
            items = []
            for key, item in value.items():
                found = SURROGATE.search(key)
                if found is not None:
                    return (
                        f"{path or 'payload'}: key {quoted(key)} is not valid Unicode text "
                        f"({_lone(found.group())})"
                    )
                items.append((f"{path}.{key}" if path else key, item))
            stack.extend(reversed(items))
        elif isinstance(value, list):
            stack.extend(reversed([(f"{path}.{n}", item) for n, item in enumerate(value)]))
    return None


def _lone(char: str) -> str:
    return f"a lone surrogate, {visible(char)}"


def _describe(exc: ValidationError) -> str:
    parts = []
    for error in exc.errors(include_url=False):
        field = visible(".".join(str(part) for part in error["loc"])) or "payload"
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
    the error is rendered (`outbound`).
    """
    try:
        dumped = dumps(value)
    except (ValueError, RecursionError):  # nested deeper than writing JSON allows here
        return truncate(text)
    if len(dumped) <= ECHO_MAX_CHARS:
        return value
    return dumped[:ECHO_MAX_CHARS] + "..."


def echo(payload: bytes) -> Any:
    """Raw bytes as they may be echoed: parsed JSON if it is, else a truncated string."""
    head = payload[: MAX_PAYLOAD_BYTES + 1]
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        # Not UTF-8: the repr shows the bytes without sending invalid UTF-8 onwards.
        return truncate(repr(head[:ECHO_MAX_CHARS]))
    try:
        return _echo_json(_loads(text), text)
    except (ValueError, RecursionError):
        return truncate(text)
