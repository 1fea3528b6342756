"""Provisioning: load tenants, extensions, queues and DID routes from a TOML file.

``ringmaster provision FILE.toml`` checks the whole file, then writes it to the store in
one transaction: either every entry is applied or none is. Running it again with the same
file changes nothing. This module checks and writes; `ringmaster.api.provisioning` runs
it in a transaction with its audit records, through a running daemon (``POST
/api/provision``, in effect at once) or on the database file itself. The format (see
``docs/provisioning.md`` for the full description)::

    [[tenant]]
    id = 1                      # integer >= 1, chosen by you; it appears in MQTT topics
    name = "Acme Support"
    timezone = "Europe/Paris"   # optional, an IANA name its reports are aligned in; "UTC"

    [[extension]]
    tenant_id = 1
    number = "101"              # a string, 1..20 characters, unique within the tenant
    name = "Alice"              # optional
    skills = {spanish = 8}      # optional: skill name -> level 1..10

    [[queue]]
    tenant_id = 1
    queue_number = "600"        # a string, 1..20 characters, unique within the tenant
    name = "Sales"
    strategy = "ringall"        # a strategy name (docs/provisioning.md lists them)
    timeout = 15                # seconds one agent rings, >= 1
    status = "active"           # or "inactive"; default "active"
    retry = 5                   # optional, seconds between rounds, >= 0
    wrapup_time = 0             # optional, seconds of rest after a call, >= 0
    overflow = {type = "queue", queue_number = "601"}   # optional, and the other
                                # options of QueueConfig under their own names
    agents = ["101", {extension = "102", penalty = 1}]  # optional; in order

    [[did_route]]
    tenant_id = 1
    did = "+15551230001"        # digits with an optional leading +
    queue = "600"               # a queue_number of the same tenant, or
    # extension = "101"         # an extension number of the same tenant (exactly one)
    skills = {spanish = 5}      # optional, with a queue only: what every call requires

Entries are matched to stored rows by their natural keys (tenant id; tenant and number;
tenant and queue_number; tenant and did) and created or updated. An option left out gets
its default. A queue's ``agents`` list, when given, replaces its enrolments (with their
options); when left out, they are left alone. Anything in the store that the file does
not mention is left alone too: provisioning adds and updates, it never deletes.

Errors name the file, the entry (counted from 1 in file order) and the field::

    demo.toml: queue[2].timeout: Input should be greater than or equal to 1
        (entry: tenant 1, queue_number "600")
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from ringmaster.engine.events import ConfigEvent, ExtensionSaved, QueueSaved, TenantSaved
from ringmaster.engine.model import (
    EnrolmentOptions,
    ExtensionId,
    ExtensionTarget,
    HangupTarget,
    OverflowTarget,
    QueueConfig,
    QueueId,
    QueueStatus,
    QueueTarget,
    TenantId,
)
from ringmaster.options import ENROLMENT_OPTIONS, QUEUE_OPTIONS, engine_values, options_model
from ringmaster.options.fields import (
    RingTimeout,
    SkillMap,
    StrategyName,
    TimeZoneName,
)
from ringmaster.store import Change, ConfigTransaction


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
    timezone: TimeZoneName = "UTC"


class ExtensionEntry(_Entry):
    """An ``[[extension]]`` entry."""

    tenant_id: Id
    number: Number
    name: str = ""
    skills: SkillMap = {}


class _AgentEntryFields(_Entry):
    """One of a queue's ``agents``: an extension number and its enrolment options.

    In the file, a plain number (``"101"``) is short for ``{extension = "101"}``. The
    agent's position is its place in the array. The options' fields are derived from
    their declarations (`EnrolmentOptions`); TOML has no null, so leaving
    `wrapup_time` out is the only way to say "the queue's".
    """

    extension: Number

    def options(self, position: int | None = None) -> EnrolmentOptions:
        """The agent's enrolment options, at `position` (None: the store's choice)."""
        return EnrolmentOptions(position=position, **engine_values(ENROLMENT_OPTIONS, self))


if TYPE_CHECKING:
    AgentEntry = _AgentEntryFields
else:
    AgentEntry = options_model(_AgentEntryFields, ENROLMENT_OPTIONS)


def _agent_from_number(value: object) -> object:
    if isinstance(value, str):
        return {"extension": value}
    if isinstance(value, Mapping | AgentEntry):
        return value
    raise PydanticCustomError(
        "agent_entry", "An agent is an extension number (a string) or an inline table"
    )


Agent = Annotated[AgentEntry, BeforeValidator(_agent_from_number)]


class OverflowEntry(_Entry):
    """A queue's ``overflow``: ``{type = "hangup"}``, or an extension or queue by number."""

    type: Literal["hangup", "extension", "queue"]
    extension: Number | None = None
    queue_number: Number | None = None

    @model_validator(mode="after")
    def _target_fits_type(self) -> OverflowEntry:
        wanted = {"hangup": None, "extension": "extension", "queue": "queue_number"}[self.type]
        given = [key for key in ("extension", "queue_number") if getattr(self, key) is not None]
        if given != ([wanted] if wanted else []):
            needs = f"`{wanted}` and no other target" if wanted else "no target"
            raise PydanticCustomError(
                "overflow_target",
                'An overflow of type "{type}" takes {needs}',
                {"type": self.type, "needs": needs},
            )
        return self


class _QueueEntryFields(_Entry):
    """A ``[[queue]]`` entry: the fields and options of `QueueConfig`, and its agents.

    The options' fields are derived from their declarations (`QueueConfig`).
    """

    tenant_id: Id
    queue_number: Number
    name: str = Field(min_length=1)
    strategy: StrategyName
    timeout: RingTimeout
    status: Literal["active", "inactive"] = "active"
    overflow: OverflowEntry = OverflowEntry(type="hangup")
    agents: list[Agent] | None = None

    @field_validator("agents")
    @classmethod
    def _no_duplicate_agents(cls, value: list[AgentEntry] | None) -> list[AgentEntry] | None:
        numbers = [agent.extension for agent in value or ()]
        if len(set(numbers)) != len(numbers):
            twice = sorted({n for n in numbers if numbers.count(n) > 1})
            raise PydanticCustomError(
                "duplicate_agent",
                "An agent is listed more than once: {twice}",
                {"twice": ", ".join(f'"{n}"' for n in twice)},
            )
        return value

    def config(self, queue_id: QueueId, overflow: OverflowTarget) -> QueueConfig:
        """The queue as the engine sees it, with its overflow target resolved to an id."""
        return QueueConfig(
            queue_id,
            TenantId(self.tenant_id),
            self.name,
            self.queue_number,
            self.strategy,
            self.timeout,
            status=QueueStatus(self.status),
            overflow=overflow,
            **engine_values(QUEUE_OPTIONS, self),
        )


if TYPE_CHECKING:
    QueueEntry = _QueueEntryFields
else:
    QueueEntry = options_model(_QueueEntryFields, QUEUE_OPTIONS)


class DidRouteEntry(_Entry):
    """A ``[[did_route]]`` entry: a DID to a queue or to an extension."""

    tenant_id: Id
    did: Did
    queue: Number | None = None
    extension: Number | None = None
    skills: SkillMap = {}

    @model_validator(mode="after")
    def _exactly_one_target(self) -> DidRouteEntry:
        if (self.queue is None) == (self.extension is None):
            raise PydanticCustomError("route_target", "Give exactly one of `queue` and `extension`")
        if self.skills and self.queue is None:
            # Skills choose among a queue's agents; a call to an extension rings just it.
            raise PydanticCustomError("route_skills", "`skills` apply to a route to a queue only")
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

    @classmethod
    def from_json(cls, answer: Any) -> ProvisionReport:
        """The report as ``POST /api/provision`` answers it.

        Raises:
            KeyError, TypeError, ValueError: The answer is not such a report.
        """
        report = cls()
        for kind, tally in report.tallies().items():
            counts = answer[kind]
            tally.created, tally.updated, tally.unchanged = (
                int(counts[key]) for key in ("created", "updated", "unchanged")
            )
        return report

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
        if part == "[key]":
            # pydantic's marker for a bad key of a table (`skills.Spanish`): the key
            # is already the previous part.
            continue
        place += f"[{part + 1}]" if isinstance(part, int) else f".{part}"
    return place


def _line(file: str, where: str, message: str, identity: str = "") -> str:
    suffix = f" (entry: {identity})" if identity else ""
    return f"{file}: {where}: {message}{suffix}"


def _pydantic_errors(file: str, raw: Mapping[str, Any], exc: ValidationError) -> list[str]:
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


@dataclass(frozen=True, slots=True)
class _Problem:
    """One cross-entry problem, before it is written as a line of the error."""

    kind: str
    index: int
    field: str
    message: str
    entry: BaseModel


def _cross_check(file: str, spec: ProvisionFile, known: _Known) -> list[str]:
    """References and uniqueness across entries; `known` gains the file's entries."""
    problems = _duplicates(spec)
    known.tenants.update(t.id for t in spec.tenant)
    for e in spec.extension:
        known.extensions.setdefault((e.tenant_id, e.number), None)
    for q in spec.queue:
        known.queues.setdefault((q.tenant_id, q.queue_number), None)
    problems += _dangling_references(spec, known)
    return [
        _line(
            file,
            _where(p.kind, p.index, [p.field]),
            p.message,
            _identity(p.kind, p.entry.model_dump()),
        )
        for p in problems
    ]


def _duplicates(spec: ProvisionFile) -> list[_Problem]:
    problems: list[_Problem] = []

    def unique(kind: str, key_field: str, keys: Iterable[object]) -> None:
        first: dict[object, int] = {}
        entries: Sequence[BaseModel] = getattr(spec, kind)
        for index, key in enumerate(keys):
            if key in first:
                message = f"duplicate of {_where(kind, first[key])}"
                problems.append(_Problem(kind, index, key_field, message, entries[index]))
            first.setdefault(key, index)

    unique("tenant", "id", (t.id for t in spec.tenant))
    unique("extension", "number", ((e.tenant_id, e.number) for e in spec.extension))
    unique("queue", "queue_number", ((q.tenant_id, q.queue_number) for q in spec.queue))
    unique("did_route", "did", ((r.tenant_id, r.did) for r in spec.did_route))
    return problems


def _dangling_references(spec: ProvisionFile, known: _Known) -> list[_Problem]:
    """References to a tenant, queue or extension that neither the file nor the store has."""
    problems: list[_Problem] = []

    def dangling(what: str, tenant: int, number: str | None) -> str | None:
        """Why `number` names no `what` ("queue", "extension") of `tenant`; None if it does."""
        table = known.queues if what == "queue" else known.extensions
        if number is None or (tenant, number) in table:
            return None
        elsewhere = sorted(t for t, n in table if n == number)
        hint = f" (only tenant {', '.join(map(str, elsewhere))} has one)" if elsewhere else ""
        return f'No {what} "{number}" in tenant {tenant}{hint}; references stay within a tenant'

    entries: list[tuple[str, Sequence[ExtensionEntry | QueueEntry | DidRouteEntry]]] = [
        ("extension", spec.extension),
        ("queue", spec.queue),
        ("did_route", spec.did_route),
    ]
    for kind, of_kind in entries:
        for index, entry in enumerate(of_kind):
            if entry.tenant_id not in known.tenants:
                no_tenant = f"No tenant {entry.tenant_id} in the file or the store"
                problems.append(_Problem(kind, index, "tenant_id", no_tenant, entry))
    for index, q in enumerate(spec.queue):
        references: list[tuple[str, str, str | None]] = [
            (f"agents[{position + 1}]", "extension", agent.extension)
            for position, agent in enumerate(q.agents or ())
        ]
        # As for DID routes: a queue or extension of the file or the store, same tenant.
        references.append(("overflow.queue_number", "queue", q.overflow.queue_number))
        references.append(("overflow.extension", "extension", q.overflow.extension))
        for field_, what, number in references:
            if message := dangling(what, q.tenant_id, number):
                problems.append(_Problem("queue", index, field_, message, q))
    for index, r in enumerate(spec.did_route):
        if r.tenant_id not in known.tenants:
            continue  # reported above; its target cannot be looked for
        for field_, what, number in (
            ("queue", "queue", r.queue),
            ("extension", "extension", r.extension),
        ):
            if message := dangling(what, r.tenant_id, number):
                problems.append(_Problem("did_route", index, field_, message, r))
    return problems


def load_text(text: str, name: str) -> ProvisionFile:
    """Check one provisioning file's text on its own (no cross-references to the store).

    Args:
        text: The file's TOML.
        name: What the error lines call the file (its path, or ``<request>``).

    Raises:
        ProvisionError: The text is not TOML, or breaks the format.
    """
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ProvisionError([f"{name}: not valid TOML: {exc}"]) from exc
    try:
        return ProvisionFile.model_validate(raw)
    except ValidationError as exc:
        raise ProvisionError(_pydantic_errors(name, raw, exc)) from exc


def read_file(path: Path) -> str:
    """The text of the provisioning file at `path`.

    Raises:
        ProvisionError: The file cannot be read, or is not UTF-8.
    """
    try:
        return path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ProvisionError([f"{path}: cannot read: {exc.strerror}"]) from exc
    except UnicodeDecodeError as exc:
        raise ProvisionError([f"{path}: not valid TOML: {exc}"]) from exc


def load_file(path: Path) -> ProvisionFile:
    """Read and check one provisioning file on its own (no cross-references to the store).

    Raises:
        ProvisionError: The file cannot be read, is not TOML, or breaks the format.
    """
    return load_text(read_file(path), str(path))


def check_file(path: Path) -> ProvisionFile:
    """Read and fully check a provisioning file that stands alone (an empty store).

    Every reference (a queue's agents, a route's target) must be to an entry of the
    file itself. `ringmaster simulate` reads its scenario this way, without a store.

    Raises:
        ProvisionError: The file is invalid; one line per problem.
    """
    spec = load_file(path)
    errors = _cross_check(str(path), spec, _Known())
    if errors:
        raise ProvisionError(errors)
    return spec


# --- applying ------------------------------------------------------------------------------


def tenants_of(spec: ProvisionFile) -> set[TenantId]:
    """Every tenant an entry of the file names: all the resources the file can change are theirs."""
    tenants = {TenantId(t.id) for t in spec.tenant}
    tenants |= {TenantId(e.tenant_id) for e in spec.extension}
    tenants |= {TenantId(q.tenant_id) for q in spec.queue}
    tenants |= {TenantId(r.tenant_id) for r in spec.did_route}
    return tenants


async def apply(tx: ConfigTransaction, spec: ProvisionFile, name: str) -> ProvisionReport:
    """Check a loaded file against itself and the store, then write it in `tx`.

    Everything is checked before anything is written; the caller's transaction makes
    the writes all or nothing (and holds their audit records: see
    `ringmaster.api.provisioning`).

    Args:
        tx: The open transaction.
        spec: The file, as `load_text` or `load_file` checked it on its own.
        name: What the error lines call the file.

    Returns:
        What was created, updated or already up to date.

    Raises:
        ProvisionError: The file is invalid; one line per problem; nothing was written.
    """
    known = _Known.from_store(await tx.load_config())
    errors = _cross_check(name, spec, known)
    if errors:
        raise ProvisionError(errors)
    return await _apply(tx, spec, known)


async def _apply(tx: ConfigTransaction, spec: ProvisionFile, known: _Known) -> ProvisionReport:
    report = ProvisionReport()
    for t in spec.tenant:
        report.tenants.add(await tx.upsert_tenant(TenantId(t.id), t.name, t.timezone))

    extension_ids = {key: ExtensionId(i) for key, i in known.extensions.items() if i is not None}
    for e in spec.extension:
        saved_ext = await tx.upsert_extension(
            TenantId(e.tenant_id), e.number, name=e.name, skills=e.skills
        )
        extension_ids[(e.tenant_id, e.number)] = saved_ext.id
        report.extensions.add(saved_ext.change)

    queue_ids = {key: QueueId(i) for key, i in known.queues.items() if i is not None}

    def overflow_of(q: QueueEntry) -> OverflowTarget | None:
        """The queue's overflow target; None while it is a queue of the file not yet saved."""
        overflow = q.overflow
        if overflow.extension is not None:
            return ExtensionTarget(extension_ids[(q.tenant_id, overflow.extension)])
        if overflow.queue_number is not None:
            target = queue_ids.get((q.tenant_id, overflow.queue_number))
            return None if target is None else QueueTarget(target)
        return HangupTarget()

    # A queue may overflow to a queue further down the file, or to itself, so such a
    # queue is saved with hangup first and given its target once every queue has an id.
    deferred: list[tuple[QueueEntry, Change]] = []
    for q in spec.queue:
        overflow = overflow_of(q)
        saved_queue = await tx.upsert_queue(q.config(QueueId(0), overflow or HangupTarget()))
        queue_ids[(q.tenant_id, q.queue_number)] = saved_queue.id
        if overflow is None:
            deferred.append((q, saved_queue.change))
        else:
            report.queues.add(saved_queue.change)
        if q.agents is not None:
            agents = [
                (extension_ids[(q.tenant_id, agent.extension)], agent.options(position))
                for position, agent in enumerate(q.agents)
            ]
            report.enrolments.add(await tx.set_enrolments(saved_queue.id, agents))
    for q, first in deferred:
        overflow = overflow_of(q)
        assert overflow is not None  # every queue of the file is saved by now
        second = await tx.upsert_queue(q.config(QueueId(0), overflow))
        report.queues.add(_both(first, second.change))

    for r in spec.did_route:
        target = (
            QueueTarget(queue_ids[(r.tenant_id, r.queue)])
            if r.queue is not None
            else ExtensionTarget(extension_ids[(r.tenant_id, r.extension or "")])
        )
        change = await tx.upsert_did_route(TenantId(r.tenant_id), r.did, target, skills=r.skills)
        report.did_routes.add(change)
    return report


def _both(first: Change, second: Change) -> Change:
    """What two writes of one row did, together."""
    if first is Change.CREATED:
        return first
    return Change.UPDATED if Change.UPDATED in (first, second) else Change.UNCHANGED
