"""Configuration records <-> rows: tenants, extensions, queues, enrolments, DID routes, audit.

Backend-neutral: a row is a tuple in the column order named here, whatever SQL reads or
writes it; JSON values have one spelling (`json_text`), so equal values store equal.
"""

from __future__ import annotations

import json
from typing import Any, Final

from ringmaster.engine.model import (
    AgentCondition,
    DidRoute,
    EnrolmentOptions,
    Extension,
    ExtensionId,
    ExtensionTarget,
    HangupTarget,
    OverflowTarget,
    PenaltyRule,
    QueueConfig,
    QueueId,
    QueueStatus,
    QueueTarget,
    RouteTarget,
    SkillRule,
    Skills,
    TenantId,
)
from ringmaster.store.records import AuditRecord, StoredAuditRecord, StoredRoute

Row = tuple[Any, ...]


def json_text(value: object) -> str:
    """The one JSON spelling of a stored value (compact, keys sorted), so equal is equal."""
    return json.dumps(value, separators=(",", ":"), sort_keys=True)


def skills_text(skills: Skills) -> str:
    """Skills as stored: a JSON object {skill name: level}."""
    # Most calls and extensions have no skills: skip the encoder for them (commit is hot).
    return json_text(dict(skills)) if skills else "{}"


def skills_value(text: str) -> dict[str, int]:
    """The inverse of `skills_text`."""
    # The same shortcut on the way back: `load_live` may read 10,000 calls.
    skills: dict[str, int] = {} if text == "{}" else json.loads(text)
    return skills


# Column orders: the converters below build and unpack tuples in these orders.
# fmt: off
QUEUE_FIELDS: Final = (
    "tenant_id", "name", "queue_number", "strategy", "timeout", "status", "retry",
    "wrapup_time", "max_len", "max_wait", "overflow_type", "overflow_extension_id",
    "overflow_queue_id", "join_empty", "leave_when_empty", "weight", "service_level",
    "announce_frequency", "ring_progressive_delay", "penalty_rules", "skill_rules",
)
# fmt: on
#: A queue row: its id, then `QUEUE_FIELDS`.
QUEUE_COLUMNS: Final = ("id", *QUEUE_FIELDS)
EXTENSION_COLUMNS: Final = ("id", "tenant_id", "number", "name", "skills")
ROUTE_COLUMNS: Final = ("id", "tenant_id", "did", "queue_id", "extension_id", "skills")
#: An enrolment's options (model.EnrolmentOptions), `position` first.
ENROLMENT_COLUMNS: Final = (
    "position", "penalty", "wrapup_time", "max_no_answer", "busy_delay", "reject_delay",
    "no_answer_delay",
)  # fmt: skip
AUDIT_FIELDS: Final = (
    "at", "actor", "tenant_id", "action", "resource", "resource_id", "before", "after"
)  # fmt: skip
AUDIT_COLUMNS: Final = ("id", *AUDIT_FIELDS)


def queue_values(config: QueueConfig) -> Row:
    """A queue's `QUEUE_FIELDS`, in that order."""
    overflow = config.overflow
    return (
        config.tenant_id,
        config.name,
        config.queue_number,
        config.strategy,
        config.timeout,
        config.status.value,
        config.retry,
        config.wrapup_time,
        config.max_len,
        config.max_wait,
        OVERFLOW_TYPES[type(overflow)],
        overflow.extension_id if isinstance(overflow, ExtensionTarget) else None,
        overflow.queue_id if isinstance(overflow, QueueTarget) else None,
        json_text(sorted(c.value for c in config.join_empty)),
        json_text(sorted(c.value for c in config.leave_when_empty)),
        config.weight,
        config.service_level,
        config.announce_frequency,
        config.ring_progressive_delay,
        json_text([{"after": r.after, "max_penalty": r.max_penalty} for r in config.penalty_rules]),
        json_text([{"after": r.after, "lower_by": r.lower_by} for r in config.skill_rules]),
    )


OVERFLOW_TYPES: Final[dict[type, str]] = {
    HangupTarget: "hangup",
    ExtensionTarget: "extension",
    QueueTarget: "queue",
}


def queue_config(row: Row) -> QueueConfig:
    """The inverse of `queue_values`, from a row of `QUEUE_COLUMNS` (the id first)."""
    (
        queue_id,
        tenant_id,
        name,
        queue_number,
        strategy,
        timeout,
        status,
        retry,
        wrapup_time,
        max_len,
        max_wait,
        overflow_type,
        overflow_extension_id,
        overflow_queue_id,
        join_empty,
        leave_when_empty,
        weight,
        service_level,
        announce_frequency,
        ring_progressive_delay,
        penalty_rules,
        skill_rules,
    ) = row
    overflow: OverflowTarget
    if overflow_type == "queue":
        overflow = QueueTarget(QueueId(overflow_queue_id))
    elif overflow_type == "extension":
        overflow = ExtensionTarget(ExtensionId(overflow_extension_id))
    else:
        overflow = HangupTarget()
    return QueueConfig(
        queue_id=QueueId(queue_id),
        tenant_id=TenantId(tenant_id),
        name=name,
        queue_number=queue_number,
        strategy=strategy,
        timeout=timeout,
        status=QueueStatus(status),
        retry=retry,
        wrapup_time=wrapup_time,
        max_len=max_len,
        max_wait=max_wait,
        overflow=overflow,
        join_empty=frozenset(AgentCondition(c) for c in json.loads(join_empty)),
        leave_when_empty=frozenset(AgentCondition(c) for c in json.loads(leave_when_empty)),
        weight=weight,
        service_level=service_level,
        announce_frequency=announce_frequency,
        ring_progressive_delay=ring_progressive_delay,
        penalty_rules=tuple(
            PenaltyRule(r["after"], r["max_penalty"]) for r in json.loads(penalty_rules)
        ),
        skill_rules=tuple(SkillRule(r["after"], r["lower_by"]) for r in json.loads(skill_rules)),
    )


def enrolment_values(options: EnrolmentOptions) -> Row:
    """The options of `ENROLMENT_COLUMNS` but `position`, in that order."""
    return (
        options.penalty,
        options.wrapup_time,
        options.max_no_answer,
        options.busy_delay,
        options.reject_delay,
        options.no_answer_delay,
    )


def enrolment_options(row: Row) -> EnrolmentOptions:
    """Options from a row of `ENROLMENT_COLUMNS`, with the stored position."""
    position, penalty, wrapup_time, max_no_answer, busy_delay, reject_delay, no_answer_delay = row
    return EnrolmentOptions(
        penalty=penalty,
        position=position,
        wrapup_time=wrapup_time,
        max_no_answer=max_no_answer,
        busy_delay=busy_delay,
        reject_delay=reject_delay,
        no_answer_delay=no_answer_delay,
    )


def extension_record(row: Row) -> Extension:
    """An extension from a row of `EXTENSION_COLUMNS`."""
    extension_id, tenant_id, number, name, skills = row
    return Extension(
        ExtensionId(extension_id), TenantId(tenant_id), number, name, skills_value(skills)
    )


def stored_route(row: Row) -> StoredRoute:
    """A DID route and its id from a row of `ROUTE_COLUMNS`."""
    route_id, tenant_id, did, queue_id, extension_id, skills = row
    target = route_target(queue_id, extension_id)
    return StoredRoute(route_id, DidRoute(TenantId(tenant_id), did, target, skills_value(skills)))


def route_target(queue_id: int | None, extension_id: int | None) -> RouteTarget:
    """A route's target from its (queue_id, extension_id) columns, exactly one set."""
    if queue_id is not None:
        return QueueTarget(QueueId(queue_id))
    assert extension_id is not None  # the table's CHECK: exactly one is set
    return ExtensionTarget(ExtensionId(extension_id))


def route_columns(target: RouteTarget) -> tuple[QueueId | None, ExtensionId | None]:
    """A route target as the (queue_id, extension_id) columns, exactly one set."""
    if isinstance(target, QueueTarget):
        return target.queue_id, None
    return None, target.extension_id


def audit_values(record: AuditRecord) -> Row:
    """An audit record's `AUDIT_FIELDS`, in that order."""
    return (
        record.at,
        record.actor,
        record.tenant_id,
        record.action,
        record.resource,
        record.resource_id,
        None if record.before is None else json_text(record.before),
        None if record.after is None else json_text(record.after),
    )


def stored_audit(row: Row) -> StoredAuditRecord:
    """The inverse of `audit_values`, from a row of `AUDIT_COLUMNS` (the id first)."""
    id_, at, actor, tenant_id, action, resource, resource_id, before, after = row
    return StoredAuditRecord(
        id_,
        AuditRecord(
            at=at,
            actor=actor,
            tenant_id=TenantId(tenant_id),
            action=action,
            resource=resource,
            resource_id=resource_id,
            before=None if before is None else json.loads(before),
            after=None if after is None else json.loads(after),
        ),
    )
