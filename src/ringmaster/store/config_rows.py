"""Configuration records <-> rows: tenants, extensions, queues, enrolments, DID routes, audit.

Backend-neutral: a row is a tuple in the column order named here, whatever SQL reads or
writes it; JSON values have one spelling (`json_text`), so equal values store equal.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, Final, Literal

from ringmaster.engine.model import (
    DidRoute,
    EnrolmentOptions,
    Extension,
    ExtensionId,
    ExtensionTarget,
    HangupTarget,
    OverflowTarget,
    QueueConfig,
    QueueId,
    QueueStatus,
    QueueTarget,
    RouteTarget,
    Skills,
    TenantId,
)
from ringmaster.options import (
    ENROLMENT_OPTIONS,
    QUEUE_OPTIONS,
    Declared,
    OptionError,
    from_plain,
    plain_values,
)
from ringmaster.store.records import AuditRecord, StoredAuditRecord, StoredRoute, StoreError

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
#: A queue's columns but its id. Its options are one JSON object (`options`), in the
#: declaration's plain form; references and keys stay columns.
QUEUE_FIELDS: Final = (
    "tenant_id", "name", "queue_number", "strategy", "timeout", "status", "overflow_type",
    "overflow_extension_id", "overflow_queue_id", "options",
)  # fmt: skip
#: A queue row: its id, then `QUEUE_FIELDS`.
QUEUE_COLUMNS: Final = ("id", *QUEUE_FIELDS)
EXTENSION_COLUMNS: Final = ("id", "tenant_id", "number", "name", "skills")
ROUTE_COLUMNS: Final = ("id", "tenant_id", "did", "queue_id", "extension_id", "skills")
#: Which agent of which queue an enrolment row is.
ENROLMENT_KEY: Final = ("queue_id", "extension_id")
#: An enrolment's `position`, then its other options as one JSON object.
ENROLMENT_COLUMNS: Final = ("position", "options")
AUDIT_FIELDS: Final = (
    "at", "actor", "tenant_id", "action", "resource", "resource_id", "before", "after"
)  # fmt: skip
AUDIT_COLUMNS: Final = ("id", *AUDIT_FIELDS)


def options_text(options: tuple[Declared, ...], values: QueueConfig | EnrolmentOptions) -> str:
    """The declared options of a queue or an enrolment, as stored: one JSON object."""
    return json_text(plain_values(options, values))


def _options(kind: _Kind, text: str, owner: str) -> Mapping[str, Any]:
    """The inverse of `options_text`, checked by the declarations.

    A missing key is left out, so that it takes the dataclass's default.

    Raises:
        StoreError: An unknown option or a bad value, naming `owner` and the option.
    """
    try:
        return _checked_options(kind, text)
    except ValueError as error:  # OptionError, or JSON that does not parse
        raise StoreError(f"{owner}: stored option {error}") from None


# Checking a value by its declaration costs ~2 us (pydantic), and most queues and
# enrolments store the same few objects: a restart reads each distinct text once. The
# values are immutable, so rows share them; a text that fails is not kept.
@functools.lru_cache(maxsize=4096)
def _checked_options(kind: _Kind, text: str) -> Mapping[str, Any]:
    stored = json.loads(text)
    if not isinstance(stored, dict):  # the schema's CHECK already refuses these
        raise OptionError(f"options are not a JSON object: {text!r}")
    return MappingProxyType(from_plain(_DECLARED[kind], stored))


_Kind = Literal["queue", "enrolment"]
_DECLARED: Final[dict[_Kind, tuple[Declared, ...]]] = {
    "queue": QUEUE_OPTIONS,
    "enrolment": ENROLMENT_OPTIONS,
}


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
        OVERFLOW_TYPES[type(overflow)],
        overflow.extension_id if isinstance(overflow, ExtensionTarget) else None,
        overflow.queue_id if isinstance(overflow, QueueTarget) else None,
        options_text(QUEUE_OPTIONS, config),
    )


OVERFLOW_TYPES: Final[dict[type, str]] = {
    HangupTarget: "hangup",
    ExtensionTarget: "extension",
    QueueTarget: "queue",
}


def queue_config(row: Row) -> QueueConfig:
    """The inverse of `queue_values`, from a row of `QUEUE_COLUMNS` (the id first).

    Raises:
        StoreError: A stored option is unknown or its value is not what it allows.
    """
    (
        queue_id,
        tenant_id,
        name,
        queue_number,
        strategy,
        timeout,
        status,
        overflow_type,
        overflow_extension_id,
        overflow_queue_id,
        options,
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
        overflow=overflow,
        **_options("queue", options, f"queue {queue_id}"),
    )


def enrolment_values(options: EnrolmentOptions) -> Row:
    """The `ENROLMENT_COLUMNS` but `position`, in that order."""
    return (options_text(ENROLMENT_OPTIONS, options),)


def enrolment_options(row: Row) -> EnrolmentOptions:
    """Options from a row of `ENROLMENT_KEY` and `ENROLMENT_COLUMNS`, with the stored position.

    Raises:
        StoreError: A stored option is unknown or its value is not what it allows.
    """
    queue_id, extension_id, position, options = row
    owner = f"queue {queue_id}, agent {extension_id}"
    return EnrolmentOptions(position=position, **_options("enrolment", options, owner))


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
