"""The configuration repository: tenants, extensions, queues, enrolments, DID routes, audit.

`ConfigTransaction` holds the logic (natural-key upserts, pages, what a change did);
the statements it runs are `sqlite.statements`', the rows `config_rows`'.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from ringmaster.engine.events import (
    AgentEnrolled,
    ConfigEvent,
    DidRouteSaved,
    ExtensionSaved,
    QueueSaved,
    TenantSaved,
)
from ringmaster.engine.model import (
    DEFAULT_ENROLMENT,
    DidRoute,
    EnrolmentOptions,
    Extension,
    ExtensionId,
    ExtensionTarget,
    QueueConfig,
    QueueId,
    QueueTarget,
    RouteTarget,
    Skills,
    Tenant,
    TenantId,
)
from ringmaster.engine.records import CallRecord
from ringmaster.store.backend import Connection
from ringmaster.store.config_rows import (
    Row,
    audit_values,
    enrolment_options,
    enrolment_values,
    extension_record,
    queue_config,
    queue_values,
    route_columns,
    skills_text,
    stored_audit,
    stored_route,
)
from ringmaster.store.live import load_live
from ringmaster.store.records import (
    AuditFilter,
    AuditRecord,
    Change,
    Page,
    Saved,
    StoredAuditRecord,
    StoredRoute,
)
from ringmaster.store.repository import Repository
from ringmaster.store.sqlite import statements as sql


def _tenant(row: Row) -> Tenant:
    return Tenant(TenantId(row[0]), row[1], row[2])


async def load_config(db: Connection) -> list[ConfigEvent]:
    """The whole configuration as the events that would build it; see `Store.load_config`."""
    events: list[ConfigEvent] = []
    for row in await db.fetch_all(sql.SELECT_ALL_TENANTS):
        events.append(TenantSaved(_tenant(tuple(row))))
    for row in await db.fetch_all(sql.SELECT_ALL_EXTENSIONS):
        events.append(ExtensionSaved(extension_record(tuple(row))))
    # By id: a queue may overflow to one saved after it, which the engine allows.
    for row in await db.fetch_all(sql.SELECT_ALL_QUEUES):
        events.append(QueueSaved(queue_config(tuple(row))))
    for row in await db.fetch_all(sql.SELECT_ALL_ENROLMENTS):
        options = enrolment_options(tuple(row))
        events.append(AgentEnrolled(QueueId(row[0]), ExtensionId(row[1]), options))
    for row in await db.fetch_all(sql.SELECT_ALL_ROUTES):
        events.append(DidRouteSaved(stored_route(tuple(row)).route))
    return events


class ConfigTransaction(Repository):
    """Configuration writes, applied together or not at all (see `Store.transaction`).

    Each upsert finds its row by natural key (a tenant's extension number, a tenant's
    queue number, a tenant's DID), so provisioning the same file twice changes nothing,
    and reports what it did as a `Change`.
    """

    async def load_config(self) -> list[ConfigEvent]:
        """The configuration as this transaction sees it; see `Store.load_config`."""
        self._check_open()
        return await load_config(self._db)

    async def stored_calls(self, tenant_id: TenantId) -> list[CallRecord]:
        """The tenant's calls as its engine last committed them (a cluster's other nodes).

        A node that does not run the tenant's shard answers from these what the engine
        would: say, whether a queue about to be deleted still has calls waiting.
        """
        self._check_open()
        return list((await load_live(self._db, {tenant_id})).calls)

    # --- natural-key upserts, for provisioning -----------------------------------------

    async def upsert_tenant(self, tenant_id: TenantId, name: str, timezone: str = "UTC") -> Change:
        """Create tenant `tenant_id` or change its name and time zone.

        Args:
            tenant_id: The tenant's id, chosen by the operator (it appears in topics).
            name: Its display name.
            timezone: The IANA time zone of its reports (checked by the caller).

        Returns:
            What happened to the row.
        """
        old = await self.tenant(tenant_id)
        if old is None:
            await self._write(sql.INSERT_TENANT, (tenant_id, name, timezone))
            return Change.CREATED
        if (old.name, old.timezone) == (name, timezone):
            return Change.UNCHANGED
        await self._write(sql.RENAME_TENANT, (name, timezone, tenant_id))
        return Change.UPDATED

    async def upsert_extension(
        self, tenant_id: TenantId, number: str, *, name: str = "", skills: Skills | None = None
    ) -> Saved[ExtensionId]:
        """Create or update a tenant's extension, found by its number.

        Args:
            tenant_id: The tenant that owns it.
            number: The extension number, 1..20 characters, unique within the tenant.
            name: Its display name.
            skills: Its skills and their levels (None: none).

        Returns:
            The extension's id and what happened to the row.
        """
        old = await self.extension_by_number(tenant_id, number)
        if old is None:
            created = await self.insert_extension(tenant_id, number, name, skills)
            return Saved(created.extension_id, Change.CREATED)
        new = Extension(old.extension_id, tenant_id, number, name, dict(skills or {}))
        if new == old:
            return Saved(old.extension_id, Change.UNCHANGED)
        await self.update_extension(new)
        return Saved(old.extension_id, Change.UPDATED)

    async def upsert_queue(self, config: QueueConfig) -> Saved[QueueId]:
        """Create or update a tenant's queue, found by its tenant and queue number.

        Every field of `config` is stored; its `queue_id` is ignored. The strategy name
        is not checked here (the schema does not know the strategies); callers validate.
        An overflow target must be of the queue's tenant (the schema refuses others).

        Returns:
            The queue's id and what happened to the row.
        """
        old = await self.queue_by_number(config.tenant_id, config.queue_number)
        if old is None:
            created = await self.insert_queue(config)
            return Saved(created.queue_id, Change.CREATED)
        new = replace(config, queue_id=old.queue_id)
        if new == old:
            return Saved(old.queue_id, Change.UNCHANGED)
        await self.update_queue(new)
        return Saved(old.queue_id, Change.UPDATED)

    async def set_enrolments(
        self, queue_id: QueueId, agents: Sequence[tuple[ExtensionId, EnrolmentOptions]]
    ) -> Change:
        """Replace a queue's agents with `agents`, each with its options.

        Args:
            queue_id: The queue.
            agents: Its agents, without duplicates, in enrolment order. An agent whose
                options have no `position` gets its index in this list.

        Returns:
            `Change.UNCHANGED` if the queue already had exactly these agents with these
            options in this order, `Change.CREATED` if it had none, else `Change.UPDATED`.
        """
        wanted = [
            (e, options if options.position is not None else replace(options, position=index))
            for index, (e, options) in enumerate(agents)
        ]
        # Stored order: by position, ties by enrolment (list) order; sort is stable.
        in_stored_order = sorted(wanted, key=lambda agent: agent[1].position or 0)
        old = await self._all(
            sql.ENROLMENTS_OF_QUEUE,
            (queue_id,),
            lambda row: (ExtensionId(row[1]), enrolment_options(row)),
        )
        if old == in_stored_order:
            return Change.UNCHANGED
        await self._write(sql.UNENROL_ALL, (queue_id,))
        await self._db.execute_many(
            sql.INSERT_ENROLMENT,
            [(queue_id, e, o.position, *enrolment_values(o)) for e, o in wanted],
        )
        return Change.UPDATED if old else Change.CREATED

    async def upsert_did_route(
        self, tenant_id: TenantId, did: str, target: RouteTarget, *, skills: Skills | None = None
    ) -> Change:
        """Create or change the route of a tenant's DID.

        The target must belong to the same tenant (enforced by the schema).

        Args:
            tenant_id: The tenant that owns the DID.
            did: The DID.
            target: Where its calls go.
            skills: The skills every call of the DID requires (None: none).

        Returns:
            What happened to the row.
        """
        new = DidRoute(tenant_id, did, target, dict(skills or {}))
        old = await self.route_by_did(tenant_id, did)
        if old is None:
            queue_id, extension_id = route_columns(target)
            await self._write(
                sql.INSERT_ROUTE,
                (tenant_id, did, queue_id, extension_id, skills_text(new.skills)),
            )
            return Change.CREATED
        if old.route == new:
            return Change.UNCHANGED
        await self.update_route(StoredRoute(old.id, new))
        return Change.UPDATED

    # --- the admin API: reads, inserts and updates by id, deletes ---------------------
    #
    # The API addresses rows by id and must refuse duplicates (409) rather than upsert,
    # so these complement the natural-key upserts above. Every list takes an optional
    # tenant filter and a page; ids are the stable order.

    async def tenant(self, tenant_id: TenantId) -> Tenant | None:
        """The tenant with this id, or None."""
        return await self._find(sql.TENANT_BY_ID, (tenant_id,), _tenant)

    async def tenants(
        self, tenant_id: TenantId | None = None, *, limit: int = 100, offset: int = 0
    ) -> Page[Tenant]:
        """A page of tenants by id; `tenant_id` narrows the list to that one tenant."""
        return await self._page(sql.TENANTS, _tenant, tenant_id, limit, offset)

    async def insert_tenant(
        self, tenant_id: TenantId | None, name: str, timezone: str = "UTC"
    ) -> Tenant:
        """Create a tenant; with `tenant_id` None, SQLite picks the next free id.

        The caller checks that `tenant_id` is free (`tenant`) and `timezone` is known.
        """
        self._check_open()
        new_id = await self._db.insert(sql.INSERT_TENANT, (tenant_id, name, timezone))
        return Tenant(TenantId(new_id), name, timezone)

    async def tenant_contents(self, tenant_id: TenantId) -> dict[str, int]:
        """How many extensions, queues and DID routes the tenant has, by kind."""
        self._check_open()
        counts: dict[str, int] = {}
        for table, count_sql in sql.TENANT_CONTENTS.items():
            ((count,),) = await self._db.fetch_all(count_sql, (tenant_id,))
            counts[table] = int(count)
        return counts

    async def delete_tenant(self, tenant_id: TenantId) -> bool:
        """Delete an empty tenant (see `tenant_contents`); False if it did not exist."""
        return await self._write(sql.DELETE_TENANT, (tenant_id,))

    async def extension(self, extension_id: ExtensionId) -> Extension | None:
        """The extension with this id, or None."""
        return await self._find(sql.EXTENSION_BY_ID, (extension_id,), extension_record)

    async def extension_by_number(self, tenant_id: TenantId, number: str) -> Extension | None:
        """A tenant's extension found by its number, or None."""
        return await self._find(sql.EXTENSION_BY_NUMBER, (tenant_id, number), extension_record)

    async def extensions(
        self, tenant_id: TenantId | None = None, *, limit: int = 100, offset: int = 0
    ) -> Page[Extension]:
        """A page of extensions by id, of one tenant or of all."""
        return await self._page(sql.EXTENSIONS, extension_record, tenant_id, limit, offset)

    async def insert_extension(
        self, tenant_id: TenantId, number: str, name: str, skills: Skills | None = None
    ) -> Extension:
        """Create an extension; the caller checks the number is free in the tenant."""
        self._check_open()
        extension = Extension(ExtensionId(0), tenant_id, number, name, dict(skills or {}))
        new_id = await self._db.insert(
            sql.INSERT_EXTENSION, (tenant_id, number, name, skills_text(extension.skills))
        )
        return replace(extension, extension_id=ExtensionId(new_id))

    async def update_extension(self, extension: Extension) -> None:
        """Store an existing extension's number, name and skills (its tenant never changes)."""
        await self._write(
            sql.UPDATE_EXTENSION,
            (
                extension.number,
                extension.name,
                skills_text(extension.skills),
                extension.extension_id,
            ),
        )

    async def delete_extension(self, extension_id: ExtensionId) -> None:
        """Delete an extension; the caller checks it is in no queue, route or overflow."""
        await self._write(sql.DELETE_EXTENSION, (extension_id,))

    async def queue(self, queue_id: QueueId) -> QueueConfig | None:
        """The queue with this id, or None."""
        return await self._find(sql.QUEUE_BY_ID, (queue_id,), queue_config)

    async def queue_by_number(self, tenant_id: TenantId, queue_number: str) -> QueueConfig | None:
        """A tenant's queue found by its queue number, or None."""
        return await self._find(sql.QUEUE_BY_NUMBER, (tenant_id, queue_number), queue_config)

    async def queues(
        self, tenant_id: TenantId | None = None, *, limit: int = 100, offset: int = 0
    ) -> Page[QueueConfig]:
        """A page of queues by id, of one tenant or of all."""
        return await self._page(sql.QUEUES, queue_config, tenant_id, limit, offset)

    async def insert_queue(self, config: QueueConfig) -> QueueConfig:
        """Create a queue with every field of `config` but its id (pass `QueueId(0)`).

        The caller checks the queue number is free in the tenant, and the strategy.

        Returns:
            The queue as stored, with its new id.
        """
        self._check_open()
        new_id = await self._db.insert(sql.INSERT_QUEUE, queue_values(config))
        stored = await self.queue(QueueId(new_id))
        assert stored is not None
        return stored

    async def update_queue(self, config: QueueConfig) -> None:
        """Store every field of an existing queue (its tenant never changes)."""
        await self._write(sql.UPDATE_QUEUE, (*queue_values(config)[1:], config.queue_id))

    async def delete_queue(self, queue_id: QueueId) -> None:
        """Delete a queue and its enrolments.

        The caller checks that no route targets it and no other queue overflows to it.
        """
        await self._write(sql.DELETE_QUEUE, (queue_id,))

    async def queues_overflowing_to(
        self, target: QueueTarget | ExtensionTarget
    ) -> list[QueueConfig]:
        """The queues whose overflow target is `target`, by id.

        A queue overflowing to itself is not listed for itself: it never stands in
        the way of its own deletion.
        """
        if isinstance(target, QueueTarget):
            return await self._all(
                sql.QUEUES_OVERFLOWING_TO_QUEUE, (target.queue_id, target.queue_id), queue_config
            )
        return await self._all(
            sql.QUEUES_OVERFLOWING_TO_EXTENSION, (target.extension_id,), queue_config
        )

    async def enrolled(self, queue_id: QueueId) -> list[Extension]:
        """A queue's agents by position, then enrolment order (existing extensions only)."""
        return [extension for extension, _ in await self.enrolments(queue_id)]

    async def enrolments(self, queue_id: QueueId) -> list[tuple[Extension, EnrolmentOptions]]:
        """A queue's agents with their options, by position, then enrolment order.

        Existing extensions only; each `position` is the stored one.
        """
        width = len(sql.EXTENSIONS.columns)
        return await self._all(
            sql.ENROLLED_EXTENSIONS,
            (queue_id,),
            lambda row: (extension_record(row[:width]), enrolment_options(row[width:])),
        )

    async def enrolment(
        self, queue_id: QueueId, extension_id: ExtensionId
    ) -> EnrolmentOptions | None:
        """How an extension is enrolled in a queue (its stored position), or None if not."""
        return await self._find(sql.ENROLMENT, (queue_id, extension_id), enrolment_options)

    async def enrol(
        self,
        queue_id: QueueId,
        extension_id: ExtensionId,
        options: EnrolmentOptions = DEFAULT_ENROLMENT,
    ) -> bool:
        """Add an agent to a queue; False if it already was in it.

        A `position` of None puts the agent after those already in the queue.
        """
        return await self._write(
            sql.ENROL,
            (queue_id, extension_id, options.position, *enrolment_values(options), queue_id),
        )

    async def update_enrolment(
        self, queue_id: QueueId, extension_id: ExtensionId, options: EnrolmentOptions
    ) -> bool:
        """Change an agent's options in a queue; False if it is not in it.

        A `position` of None keeps the agent's position.
        """
        return await self._write(
            sql.UPDATE_ENROLMENT,
            (options.position, *enrolment_values(options), queue_id, extension_id),
        )

    async def unenrol(self, queue_id: QueueId, extension_id: ExtensionId) -> bool:
        """Take an agent out of a queue; False if it was not in it."""
        return await self._write(sql.UNENROL, (queue_id, extension_id))

    async def queues_of(self, extension_id: ExtensionId) -> list[QueueConfig]:
        """The queues an extension is enrolled in, by id."""
        return await self._all(sql.QUEUES_OF_EXTENSION, (extension_id,), queue_config)

    async def route(self, route_id: int) -> StoredRoute | None:
        """The DID route with this id, or None."""
        return await self._find(sql.ROUTE_BY_ID, (route_id,), stored_route)

    async def route_by_did(self, tenant_id: TenantId, did: str) -> StoredRoute | None:
        """A tenant's route for one DID, or None."""
        return await self._find(sql.ROUTE_BY_DID, (tenant_id, did), stored_route)

    async def routes(
        self, tenant_id: TenantId | None = None, *, limit: int = 100, offset: int = 0
    ) -> Page[StoredRoute]:
        """A page of DID routes by id, of one tenant or of all."""
        return await self._page(sql.ROUTES, stored_route, tenant_id, limit, offset)

    async def routes_to(self, target: RouteTarget) -> list[StoredRoute]:
        """The DID routes that send calls to a queue or an extension, by id."""
        if isinstance(target, QueueTarget):
            return await self._all(sql.ROUTES_TO_QUEUE, (target.queue_id,), stored_route)
        return await self._all(sql.ROUTES_TO_EXTENSION, (target.extension_id,), stored_route)

    async def insert_route(self, route: DidRoute) -> StoredRoute:
        """Create a DID route; the caller checks the DID is free and the target same-tenant."""
        await self.upsert_did_route(route.tenant_id, route.did, route.target, skills=route.skills)
        stored = await self.route_by_did(route.tenant_id, route.did)
        assert stored is not None
        return stored

    async def update_route(self, stored: StoredRoute) -> None:
        """Store an existing route's DID, target and skills (its tenant never changes)."""
        queue_id, extension_id = route_columns(stored.route.target)
        await self._write(
            sql.UPDATE_ROUTE,
            (stored.route.did, queue_id, extension_id, skills_text(stored.route.skills), stored.id),
        )

    async def delete_route(self, route_id: int) -> None:
        """Delete a DID route."""
        await self._write(sql.DELETE_ROUTE, (route_id,))

    # --- the audit trail ------------------------------------------------------------

    async def insert_audit(self, record: AuditRecord) -> int:
        """Record a change in this transaction, so that it commits with the change or not at all.

        Returns:
            The record's id.
        """
        self._check_open()
        return await self._db.insert(sql.INSERT_AUDIT, audit_values(record))

    async def audit(
        self, where: AuditFilter, *, limit: int = 100, offset: int = 0
    ) -> Page[StoredAuditRecord]:
        """A page of audit records by id (oldest first), as `where` narrows them."""
        self._check_open()
        given = [
            (test, value)
            for field, test in sql.AUDIT_TESTS.items()
            if (value := getattr(where, field)) is not None
        ]
        count, page = sql.audit_page([test for test, _ in given])
        params = tuple(value for _, value in given)
        ((total,),) = await self._db.fetch_all(count, params)
        rows = await self._db.fetch_all(page, (*params, limit, offset))
        return Page([stored_audit(tuple(row)) for row in rows], int(total))
