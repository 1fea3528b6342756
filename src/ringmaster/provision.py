"""Provisioning: load tenants, extensions, queues and DID routes from a TOML file.

``ringmaster provision FILE.toml`` checks the whole file, then writes it to the store in
one transaction: either every entry is applied or none is. Running it again with the same
file changes nothing. The format (see ``docs/provisioning.md`` for the full description)::

    [[tenant]]
    id = 1                      # integer >= 1, chosen by you; it appears in MQTT topics
    name = "Acme Support"

    [[extension]]
    tenant_id = 1
    number = "101"              # a string, 1..20 characters, unique within the tenant
    name = "Alice"              # optional

    [[queue]]
    tenant_id = 1
    queue_number = "600"        # a string, 1..20 characters, unique within the tenant
    name = "Sales"
    strategy = "ringall"        # ringall, leastrecent or roundrobin
    timeout = 15                # seconds one agent rings, >= 1
    status = "active"           # or "inactive"; default "active"
    retry = 5                   # optional, seconds between rounds, >= 0
    wrapup_time = 0             # optional, seconds of rest after a call, >= 0
    agents = ["101", "102"]     # optional; extension numbers of the same tenant, in order

    [[did_route]]
    tenant_id = 1
    did = "+15551230001"        # digits with an optional leading +
    queue = "600"               # a queue_number of the same tenant, or
    # extension = "101"         # an extension number of the same tenant (exactly one)

Entries are matched to stored rows by their natural keys (tenant id; tenant and number;
tenant and queue_number; tenant and did) and created or updated. A queue's ``agents``
list, when given, replaces its enrolments; when left out, they are left alone. Anything
in the store that the file does not mention is left alone too: provisioning adds and
updates, it never deletes.

Errors name the file, the entry (counted from 1 in file order) and the field::

    demo.toml: queue[2].timeout: Input should be greater than or equal to 1
        (entry: tenant 1, queue_number "600")
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic_core import PydanticCustomError

from ringmaster.engine.events import ConfigEvent, ExtensionSaved, QueueSaved, TenantSaved
from ringmaster.engine.model import (
    ExtensionId,
    ExtensionTarget,
    QueueId,
    QueueStatus,
    QueueTarget,
    TenantId,
)
from ringmaster.fields import StrategyName
from ringmaster.store import Change, ConfigTransaction, Store


class ProvisionError(Exception):
    """The provisioning file is invalid; nothing was written.

    Attributes:
        errors: One line per problem, each naming the file, the entry and the field.
    """

    def __init__(self, errors: Sequence[str]) -> None:
        super().__init__("\n".join(errors))
        self.errors = tuple(errors)


# --- the file's format -------------------------------------------------------------------

Id = Annotated[int, Field(ge=1)]
Number = Annotated[str, Field(min_length=1, max_length=20)]
Did = Annotated[str, Field(pattern=r"^\+?[0-9]+$")]


class _Entry(BaseModel):
    # strict: TOML is typed, so `number = 101` (an integer) is a mistake worth reporting,
    # not something to coerce (it would silently lose leading zeros, e.g. "0101").
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class TenantEntry(_Entry):
    """A ``[[tenant]]`` entry."""

    id: Id
    name: str = Field(min_length=1)


class ExtensionEntry(_Entry):
    """An ``[[extension]]`` entry."""

    tenant_id: Id
    number: Number
    name: str = ""


class QueueEntry(_Entry):
    """A ``[[queue]]`` entry."""

    tenant_id: Id
    queue_number: Number
    name: str = Field(min_length=1)
    strategy: StrategyName
    timeout: int = Field(ge=1)
    status: Literal["active", "inactive"] = "active"
    retry: int = Field(default=5, ge=0)
    wrapup_time: int = Field(default=0, ge=0)
    agents: list[Number] | None = None

    @field_validator("agents")
    @classmethod
    def _no_duplicate_agents(cls, value: list[str] | None) -> list[str] | None:
        if value is not None and len(set(value)) != len(value):
            twice = sorted({n for n in value if value.count(n) > 1})
            raise PydanticCustomError(
                "duplicate_agent",
                "An agent is listed more than once: {twice}",
                {"twice": ", ".join(f'"{n}"' for n in twice)},
            )
        return value


class DidRouteEntry(_Entry):
    """A ``[[did_route]]`` entry: a DID to a queue or to an extension."""

    tenant_id: Id
    did: Did
    queue: Number | None = None
    extension: Number | None = None

    @model_validator(mode="after")
    def _exactly_one_target(self) -> DidRouteEntry:
        if (self.queue is None) == (self.extension is None):
            raise PydanticCustomError("route_target", "Give exactly one of `queue` and `extension`")
        return self


class ProvisionFile(_Entry):
    """The whole file: arrays of tables, each optional."""

    # Lists, not tuples: strict mode takes TOML arrays (Python lists) only as lists.

    tenant: list[TenantEntry] = []
    extension: list[ExtensionEntry] = []
    queue: list[QueueEntry] = []
    did_route: list[DidRouteEntry] = []


# --- the report --------------------------------------------------------------------------


@dataclass(slots=True)
class Tally:
    """How many entries of one kind were created, updated or already as the file says."""

    created: int = 0
    updated: int = 0
    unchanged: int = 0

    def add(self, change: Change) -> None:
        """Count one write's outcome."""
        setattr(self, change.value, getattr(self, change.value) + 1)

    def __str__(self) -> str:
        return f"{self.created} created, {self.updated} updated, {self.unchanged} unchanged"


@dataclass(slots=True)
class ProvisionReport:
    """What `provision` did, per kind of entry (enrolments count one per queue)."""

    tenants: Tally = field(default_factory=Tally)
    extensions: Tally = field(default_factory=Tally)
    queues: Tally = field(default_factory=Tally)
    enrolments: Tally = field(default_factory=Tally)
    did_routes: Tally = field(default_factory=Tally)

    def tallies(self) -> dict[str, Tally]:
        """The tallies by kind, in the order they are applied."""
        return {
            "tenants": self.tenants,
            "extensions": self.extensions,
            "queues": self.queues,
            "enrolments": self.enrolments,
            "did_routes": self.did_routes,
        }

    @property
    def changed(self) -> bool:
        """Whether anything was created or updated."""
        return any(t.created or t.updated for t in self.tallies().values())

    def __str__(self) -> str:
        return "\n".join(f"{kind}: {tally}" for kind, tally in self.tallies().items())


# --- checking ------------------------------------------------------------------------------


def _identity(kind: str, raw: Any) -> str:
    """A short description of a raw entry, from whichever key fields it has."""
    if not isinstance(raw, Mapping):
        return ""
    keys = {
        "tenant": ("id",),
        "extension": ("tenant_id", "number"),
        "queue": ("tenant_id", "queue_number"),
        "did_route": ("tenant_id", "did"),
    }.get(kind, ())
    parts = []
    for key in keys:
        if key in raw:
            value = raw[key]
            shown = f'"{value}"' if isinstance(value, str) else repr(value)
            parts.append(f"tenant {shown}" if key == "tenant_id" else f"{key} {shown}")
    return ", ".join(parts)


def _where(kind: str, index: int, rest: Iterable[str | int] = ()) -> str:
    place = f"{kind}[{index + 1}]"
    for part in rest:
        place += f"[{part + 1}]" if isinstance(part, int) else f".{part}"
    return place


def _line(file: Path, where: str, message: str, identity: str = "") -> str:
    suffix = f" (entry: {identity})" if identity else ""
    return f"{file}: {where}: {message}{suffix}"


def _pydantic_errors(file: Path, raw: Mapping[str, Any], exc: ValidationError) -> list[str]:
    lines = []
    for error in exc.errors():
        loc = error["loc"]
        kind = str(loc[0])
        if len(loc) >= 2 and isinstance(loc[1], int):  # noqa: PLR2004 - (kind, index, ...)
            entries = raw.get(kind)
            entry = entries[loc[1]] if isinstance(entries, list) else None
            where = _where(kind, loc[1], loc[2:])
            lines.append(_line(file, where, error["msg"], _identity(kind, entry)))
        else:
            lines.append(_line(file, ".".join(str(p) for p in loc), error["msg"]))
    return lines


@dataclass(slots=True)
class _Known:
    """What exists, per tenant, in the store or the file: the targets of references."""

    tenants: set[int] = field(default_factory=set)
    extensions: dict[tuple[int, str], int | None] = field(default_factory=dict)
    queues: dict[tuple[int, str], int | None] = field(default_factory=dict)

    @classmethod
    def from_store(cls, config: Iterable[ConfigEvent]) -> _Known:
        known = cls()
        for event in config:
            if isinstance(event, TenantSaved):
                known.tenants.add(event.tenant.tenant_id)
            elif isinstance(event, ExtensionSaved):
                ext = event.extension
                known.extensions[(ext.tenant_id, ext.number)] = ext.extension_id
            elif isinstance(event, QueueSaved):
                queue = event.queue
                known.queues[(queue.tenant_id, queue.queue_number)] = queue.queue_id
        return known


def _cross_check(file: Path, spec: ProvisionFile, known: _Known) -> list[str]:
    """References and uniqueness across entries; `known` gains the file's entries."""
    errors: list[str] = []

    def fail(kind: str, index: int, field_: str, message: str, entry: BaseModel) -> None:
        identity = _identity(kind, entry.model_dump())
        errors.append(_line(file, _where(kind, index, [field_]), message, identity))

    def unique(kind: str, key_field: str, keys: Iterable[object]) -> None:
        first: dict[object, int] = {}
        entries: Sequence[BaseModel] = getattr(spec, kind)
        for index, key in enumerate(keys):
            if key in first:
                message = f"duplicate of {_where(kind, first[key])}"
                fail(kind, index, key_field, message, entries[index])
            first.setdefault(key, index)

    unique("tenant", "id", (t.id for t in spec.tenant))
    unique("extension", "number", ((e.tenant_id, e.number) for e in spec.extension))
    unique("queue", "queue_number", ((q.tenant_id, q.queue_number) for q in spec.queue))
    unique("did_route", "did", ((r.tenant_id, r.did) for r in spec.did_route))

    known.tenants.update(t.id for t in spec.tenant)
    for e in spec.extension:
        known.extensions.setdefault((e.tenant_id, e.number), None)
    for q in spec.queue:
        known.queues.setdefault((q.tenant_id, q.queue_number), None)

    def owners(table: Mapping[tuple[int, str], object], number: str) -> list[int]:
        return sorted(tenant for tenant, n in table if n == number)

    def missing(what: str, table: Mapping[tuple[int, str], object], tenant: int, n: str) -> str:
        elsewhere = owners(table, n)
        hint = f" (only tenant {', '.join(map(str, elsewhere))} has one)" if elsewhere else ""
        return f'No {what} "{n}" in tenant {tenant}{hint}; references stay within a tenant'

    owned: list[tuple[str, Sequence[ExtensionEntry | QueueEntry]]] = [
        ("extension", spec.extension),
        ("queue", spec.queue),
    ]
    for kind, entries in owned:
        for index, entry in enumerate(entries):
            if entry.tenant_id not in known.tenants:
                message = f"No tenant {entry.tenant_id} in the file or the store"
                fail(kind, index, "tenant_id", message, entry)
    for index, q in enumerate(spec.queue):
        for position, number in enumerate(q.agents or ()):
            if (q.tenant_id, number) not in known.extensions:
                message = missing("extension", known.extensions, q.tenant_id, number)
                fail("queue", index, f"agents[{position + 1}]", message, q)
    for index, r in enumerate(spec.did_route):
        if r.tenant_id not in known.tenants:
            message = f"No tenant {r.tenant_id} in the file or the store"
            fail("did_route", index, "tenant_id", message, r)
        elif r.queue is not None and (r.tenant_id, r.queue) not in known.queues:
            fail(
                "did_route", index, "queue", missing("queue", known.queues, r.tenant_id, r.queue), r
            )
        elif r.extension is not None and (r.tenant_id, r.extension) not in known.extensions:
            message = missing("extension", known.extensions, r.tenant_id, r.extension)
            fail("did_route", index, "extension", message, r)
    return errors


def load_file(path: Path) -> ProvisionFile:
    """Read and check one provisioning file on its own (no cross-references to the store).

    Raises:
        ProvisionError: The file cannot be read, is not TOML, or breaks the format.
    """
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ProvisionError([f"{path}: cannot read: {exc.strerror}"]) from exc
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ProvisionError([f"{path}: not valid TOML: {exc}"]) from exc
    try:
        return ProvisionFile.model_validate(raw)
    except ValidationError as exc:
        raise ProvisionError(_pydantic_errors(path, raw, exc)) from exc


def check_file(path: Path) -> ProvisionFile:
    """Read and fully check a provisioning file that stands alone (an empty store).

    Every reference (a queue's agents, a route's target) must be to an entry of the
    file itself. `ringmaster simulate` reads its scenario this way, without a store.

    Raises:
        ProvisionError: The file is invalid; one line per problem.
    """
    spec = load_file(path)
    errors = _cross_check(path, spec, _Known())
    if errors:
        raise ProvisionError(errors)
    return spec


# --- applying ------------------------------------------------------------------------------


async def provision(path: Path, store: Store) -> ProvisionReport:
    """Check the provisioning file at `path` against itself and the store, then apply it.

    Everything is checked before anything is written, and the writes are one transaction.

    Args:
        path: The TOML file.
        store: The open store to provision.

    Returns:
        What was created, updated or already up to date.

    Raises:
        ProvisionError: The file is invalid; the message has one line per problem and
            the store is unchanged.
    """
    spec = load_file(path)
    async with store.transaction() as tx:
        known = _Known.from_store(await tx.load_config())
        errors = _cross_check(path, spec, known)
        if errors:
            raise ProvisionError(errors)
        return await _apply(tx, spec, known)


async def _apply(tx: ConfigTransaction, spec: ProvisionFile, known: _Known) -> ProvisionReport:
    report = ProvisionReport()
    for t in spec.tenant:
        report.tenants.add(await tx.upsert_tenant(TenantId(t.id), t.name))

    extension_ids = {key: ExtensionId(i) for key, i in known.extensions.items() if i is not None}
    for e in spec.extension:
        saved_ext = await tx.upsert_extension(TenantId(e.tenant_id), e.number, name=e.name)
        extension_ids[(e.tenant_id, e.number)] = saved_ext.id
        report.extensions.add(saved_ext.change)

    queue_ids = {key: QueueId(i) for key, i in known.queues.items() if i is not None}
    for q in spec.queue:
        saved_queue = await tx.upsert_queue(
            TenantId(q.tenant_id),
            q.queue_number,
            name=q.name,
            strategy=q.strategy,
            timeout=q.timeout,
            status=QueueStatus(q.status),
            retry=q.retry,
            wrapup_time=q.wrapup_time,
        )
        queue_ids[(q.tenant_id, q.queue_number)] = saved_queue.id
        report.queues.add(saved_queue.change)
        if q.agents is not None:
            agents = [extension_ids[(q.tenant_id, number)] for number in q.agents]
            report.enrolments.add(await tx.set_enrolments(saved_queue.id, agents))

    for r in spec.did_route:
        target = (
            QueueTarget(queue_ids[(r.tenant_id, r.queue)])
            if r.queue is not None
            else ExtensionTarget(extension_ids[(r.tenant_id, r.extension or "")])
        )
        report.did_routes.add(await tx.upsert_did_route(TenantId(r.tenant_id), r.did, target))
    return report
