"""What every endpoint shares: the store, the engine's host, one write at a time.

Every write follows the same path (`ApiContext.write`): validate, write the
configuration in one store transaction, then hand the matching configuration
events to the service (`Service.apply`), which applies them in its own turn
loop so they take effect on the next call without a restart.

The same path keeps the audit trail: the route says what it changed
(`Write.changed`, the resource as it reads before and after), and the record is
written in the change's own transaction, then logged once committed.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Annotated, NoReturn, Protocol, TypeVar

import structlog
from fastapi import Depends, HTTPException, Request, status
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel

from ringmaster.api.auth import Caller, Principal
from ringmaster.api.feed import LiveFeed
from ringmaster.api.schemas import (
    DEFAULT_PAGE,
    AuditResource,
    Limit,
    Offset,
    Page,
    TenantFilter,
)
from ringmaster.api.served import NotServedHere
from ringmaster.engine.commands import Command
from ringmaster.engine.core import Engine
from ringmaster.engine.events import ConfigEvent, SupervisorEvent
from ringmaster.engine.model import (
    Extension,
    ExtensionId,
    QueueConfig,
    QueueId,
    RouteTarget,
    Tenant,
    TenantId,
)
from ringmaster.store import AuditRecord, ConfigTransaction, Store
from ringmaster.store import Page as StorePage

_log = structlog.get_logger("ringmaster.audit")


class EngineHost(Protocol):
    """What the API needs of `ringmaster.daemon.service.Service` (tests may pass a stand-in)."""

    def engine_for(self, tenant_id: TenantId) -> Engine | None:
        """The live engine that serves the tenant, read-only.

        None on a cluster node that does not hold the tenant's shard now.
        """
        ...

    async def apply(self, events: list[ConfigEvent]) -> None:
        """Apply stored configuration changes to the engine.

        Raises:
            NotServedHere: A cluster host refuses them (a 421); they are stored by then.
        """
        ...

    async def act(self, event: SupervisorEvent) -> list[Command]:
        """Hand a supervisor's request to the engine; its commands, once stored.

        Raises:
            NotServedHere: A cluster node does not hold the tenant's shard (any more).
        """
        ...

    def not_ready(self) -> list[str]:
        """Why the daemon does not serve calls now (``/readyz``); empty when it does."""
        ...

    @property
    def live(self) -> LiveFeed:
        """Which tenants changed, for the live streams (``/api/live/{tenant_id}/stream``).

        A cluster host that stops serving a tenant says it changed too: its streams
        then end, and their clients reconnect to the shard's new holder.
        """
        ...


@dataclass
class Write:
    """One write in progress: its transaction, the events to apply after commit, its record.

    A write changes one resource; the route says which with `changed`.
    """

    tx: ConfigTransaction
    caller: Principal
    at: float
    events: list[ConfigEvent] = field(default_factory=list)
    record: AuditRecord | None = None

    def changed(
        self,
        resource: AuditResource,
        resource_id: int | str,
        tenant_id: int,
        before: BaseModel | None,
        after: BaseModel | None,
    ) -> None:
        """Say what this write changed, for the audit trail.

        Args:
            resource: Its kind.
            resource_id: Its id (an agent's: ``queue_id/extension_id``).
            tenant_id: Its tenant (a tenant's: its own id).
            before: As the API read it before; None for a creation.
            after: As the API reads it now; None for a deletion.
        """
        assert self.record is None, f"one change per write: {self.record} then {resource}"
        assert before is not None or after is not None
        self.record = AuditRecord(
            at=self.at,
            actor=self.caller.name,
            tenant_id=TenantId(tenant_id),
            action="create" if before is None else "delete" if after is None else "update",
            resource=resource,
            resource_id=str(resource_id),
            before=None if before is None else before.model_dump(mode="json"),
            after=None if after is None else after.model_dump(mode="json"),
        )


def log_change(record: AuditRecord, record_id: int) -> None:
    """Log a committed change: one ``audit`` line, as the trail holds it (no token in it)."""
    _log.info(
        "audit",
        audit_id=record_id,
        actor=record.actor,
        tenant_id=record.tenant_id,
        action=record.action,
        resource=record.resource,
        resource_id=record.resource_id,
        before=record.before,
        after=record.after,
    )


@dataclass
class ApiContext:
    """The admin API's shared state, kept on ``app.state.context``."""

    host: EngineHost
    store: Store
    clock: Callable[[], float]
    #: One write at a time, from its transaction to its `apply`: two writes that
    #: committed in one order must reach the engine in that order too.
    writes: asyncio.Lock = field(default_factory=asyncio.Lock)

    @asynccontextmanager
    async def read(self) -> AsyncIterator[ConfigTransaction]:
        """A consistent view of the configuration (nothing is written).

        On the store's reading connection: reads never wait for, nor hold up, the
        daemon's commits.
        """
        async with self.store.snapshot() as tx:
            yield tx

    @asynccontextmanager
    async def write(self, caller: Principal) -> AsyncIterator[Write]:
        """Write in one transaction with its audit record, then apply the events to the engine.

        An exception inside the block rolls the transaction back, records nothing and
        applies nothing. A block that changes nothing (no events) records nothing.

        Args:
            caller: Who writes, as the audit trail names them.
        """
        async with self.writes:
            async with self.store.transaction() as tx:
                write = Write(tx, caller, self.clock())
                yield write
                # A change without its record is a bug of the route, never the caller's.
                assert (write.record is None) == (not write.events), (
                    f"a write must say what it changed exactly when it changes something:"
                    f" {write.record}, {write.events}"
                )
                record_id = None if write.record is None else await tx.insert_audit(write.record)
            if write.record is not None and record_id is not None:  # committed
                log_change(write.record, record_id)
            if write.events:
                await self.host.apply(write.events)

    def engine_for(self, tenant_id: int) -> Engine:
        """The live engine that serves the tenant, for the live views and the supervisor.

        Raises:
            HTTPException: 421 when a cluster node does not hold the tenant's shard now
                (`misdirected`). Check that the caller sees the tenant first: to a
                tenant token, another tenant's resource is a 404 wherever it is served.
        """
        engine = self.host.engine_for(TenantId(tenant_id))
        if engine is None:
            raise misdirected(TenantId(tenant_id))
        return engine


def get_context(request: Request) -> ApiContext:
    """FastAPI dependency: the app's `ApiContext`."""
    context: ApiContext = request.app.state.context
    return context


Context = Annotated[ApiContext, Depends(get_context)]


ItemT = TypeVar("ItemT")
OutT = TypeVar("OutT")


class Fetch(Protocol[ItemT]):
    """A page of one kind of resource from the store, as `ConfigTransaction.tenants` reads it."""

    def __call__(
        self, tx: ConfigTransaction, tenant_id: TenantId | None, /, *, limit: int, offset: int
    ) -> Awaitable[StorePage[ItemT]]:
        """Read the page."""
        ...


@dataclass(frozen=True)
class Listing:
    """A list request: who asks, the tenant it filters on, and the page it wants."""

    context: ApiContext
    caller: Principal
    tenant_id: int | None
    limit: int
    offset: int

    async def page(self, fetch: Fetch[ItemT], out: Callable[[ItemT], OutT]) -> Page[OutT]:
        """The page of the resources the caller sees, by id, each as the API reads it.

        Args:
            fetch: Reads a page of the resource (an unbound `ConfigTransaction` method).
            out: The resource as the API reads it.
        """
        if hidden_list(self.caller, self.tenant_id):
            return Page(items=[], total=0, limit=self.limit, offset=self.offset)
        async with self.context.read() as tx:
            page = await fetch(
                tx, list_filter(self.caller, self.tenant_id), limit=self.limit, offset=self.offset
            )
        return Page(
            items=[out(item) for item in page.items],
            total=page.total,
            limit=self.limit,
            offset=self.offset,
        )


def get_listing(
    context: Context,
    caller: Caller,
    tenant_id: TenantFilter = None,
    limit: Limit = DEFAULT_PAGE,
    offset: Offset = 0,
) -> Listing:
    """FastAPI dependency: a list request's `Listing`, from its query parameters."""
    return Listing(context, caller, tenant_id, limit, offset)


ListQuery = Annotated[Listing, Depends(get_listing)]


# --- errors: one shape per kind -------------------------------------------------------------


def misdirected(tenant_id: TenantId | None) -> HTTPException:
    """The 421 for a request this cluster node cannot serve: the tenant's shard is elsewhere.

    ``{"detail": ...}`` naming the tenant and where to find the node that serves it
    (`NotServedHere`'s words).
    """
    return HTTPException(status.HTTP_421_MISDIRECTED_REQUEST, str(NotServedHere(tenant_id)))


def not_found(detail: str) -> NoReturn:
    """Answer 404 ``{"detail": detail}``."""
    raise HTTPException(status.HTTP_404_NOT_FOUND, detail)


def conflict(detail: str) -> NoReturn:
    """Answer 409 ``{"detail": detail}``."""
    raise HTTPException(status.HTTP_409_CONFLICT, detail)


def invalid(field_name: str | tuple[str, ...], message: str, kind: str) -> NoReturn:
    """Answer 422 in FastAPI's own validation shape, for a rule pydantic cannot see.

    Args:
        field_name: The body field at fault; a tuple for a nested one
            (``("overflow", "extension")``).
        message: Why.
        kind: A stable machine-readable error type.
    """
    path = (field_name,) if isinstance(field_name, str) else field_name
    raise RequestValidationError([{"loc": ("body", *path), "msg": message, "type": kind}])


# --- lookups that respect tenant isolation ------------------------------------------------
#
# Another tenant's resource is reported exactly like a missing one, so that a
# tenant token learns nothing about ids outside its tenant.


async def tenant_for(
    tx: ConfigTransaction, caller: Principal, tenant_id: int, *, field_name: str | None
) -> Tenant:
    """The tenant `tenant_id` if the caller sees it, else a 404.

    Args:
        tx: The transaction to read in.
        caller: Who is asking.
        tenant_id: The tenant.
        field_name: The body field that named it, for the message; None for the path.
    """
    tenant = await tx.tenant(TenantId(tenant_id)) if caller.sees(tenant_id) else None
    if tenant is None:
        prefix = f"{field_name}: " if field_name else ""
        not_found(f"{prefix}tenant {tenant_id} not found")
    return tenant


async def extension_for(tx: ConfigTransaction, caller: Principal, extension_id: int) -> Extension:
    """The extension if the caller sees it, else a 404."""
    extension = await tx.extension(ExtensionId(extension_id))
    if extension is None or not caller.sees(extension.tenant_id):
        not_found(f"extension {extension_id} not found")
    return extension


async def queue_for(tx: ConfigTransaction, caller: Principal, queue_id: int) -> QueueConfig:
    """The queue if the caller sees it, else a 404."""
    queue = await tx.queue(QueueId(queue_id))
    if queue is None or not caller.sees(queue.tenant_id):
        not_found(f"queue {queue_id} not found")
    return queue


def list_filter(caller: Principal, tenant_id: int | None) -> TenantId | None:
    """The tenant filter of a list: a tenant token lists its own tenant only.

    A tenant token filtering on another tenant gets an empty list (`hidden_list`).

    Returns:
        The tenant to list, or None for every tenant.
    """
    if caller.tenant_id is None:
        return None if tenant_id is None else TenantId(tenant_id)
    return caller.tenant_id


def hidden_list(caller: Principal, tenant_id: int | None) -> bool:
    """True when a tenant token filters on another tenant: the list is empty."""
    return tenant_id is not None and not caller.sees(tenant_id)


async def refuse_if_a_target(tx: ConfigTransaction, target: RouteTarget, named: str) -> None:
    """Answer 409 while a DID route or a queue's overflow still points at `target`.

    Args:
        tx: The transaction to read in.
        target: The queue or extension about to be deleted.
        named: It, for the messages (``queue 3``).
    """
    routes = await tx.routes_to(target)
    if routes:
        listed = names([f"{r.id} ({r.route.did})" for r in routes])
        conflict(f"{named} is the target of DID routes {listed}")
    overflowing = await tx.queues_overflowing_to(target)
    if overflowing:
        conflict(
            f"{named} is the overflow target of {queues_named(overflowing)};"
            " change their overflow first"
        )


def names(items: list[str]) -> str:
    """``a, b and c``, for messages."""
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def queues_named(queues: list[QueueConfig]) -> str:
    """``queue 1 (600 Sales)`` or ``queues 1 (600 Sales) and 3 (700 Support)``, for messages."""
    listed = names([f"{q.queue_id} ({q.queue_number} {q.name})" for q in queues])
    return f"queue{'s' if len(queues) > 1 else ''} {listed}"
