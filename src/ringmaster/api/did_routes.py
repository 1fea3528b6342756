"""``/api/did-routes``: where calls to a tenant's DID go, a queue or an extension.

A route to a queue may require skills of the agents it rings (skills-based routing).

Routes are addressed by an id (store migration 2) like every other resource, rather
than by ``{tenant_id}/{did}``: a DID then changes with a PATCH, and a DID's ``+``
needs no escaping in a path.
"""

from __future__ import annotations

from dataclasses import replace

from fastapi import APIRouter, status
from pydantic import MISSING

from ringmaster.api.auth import Caller, Principal
from ringmaster.api.context import (
    Context,
    ListQuery,
    conflict,
    invalid,
    not_found,
    tenant_for,
)
from ringmaster.api.schemas import (
    DidRouteCreate,
    DidRouteOut,
    DidRouteUpdate,
    Page,
    PathId,
)
from ringmaster.engine.events import ConfigEvent, DidRouteRemoved, DidRouteSaved
from ringmaster.engine.model import (
    DidRoute,
    ExtensionId,
    ExtensionTarget,
    QueueId,
    QueueTarget,
    RouteTarget,
    TenantId,
)
from ringmaster.store import ConfigTransaction, StoredRoute

router = APIRouter(prefix="/api/did-routes", tags=["did-routes"])


def route_out(stored: StoredRoute) -> DidRouteOut:
    """A DID route as the API reads it."""
    target = stored.route.target
    return DidRouteOut(
        id=stored.id,
        tenant_id=stored.route.tenant_id,
        did=stored.route.did,
        queue_id=target.queue_id if isinstance(target, QueueTarget) else None,
        extension_id=target.extension_id if isinstance(target, ExtensionTarget) else None,
        skills=dict(stored.route.skills),
    )


async def _target(
    tx: ConfigTransaction, tenant_id: TenantId, queue_id: int | None, extension_id: int | None
) -> RouteTarget:
    """The route target, checked to be in the route's tenant (422 naming the field)."""
    # The same answer whether the target does not exist or is another tenant's.
    if queue_id is not None:
        queue = await tx.queue(QueueId(queue_id))
        if queue is None or queue.tenant_id != tenant_id:
            invalid("queue_id", f"no queue {queue_id} in tenant {tenant_id}", "queue_not_in_tenant")
        return QueueTarget(queue.queue_id)
    assert extension_id is not None  # the request models require one
    extension = await tx.extension(ExtensionId(extension_id))
    if extension is None or extension.tenant_id != tenant_id:
        invalid(
            "extension_id",
            f"no extension {extension_id} in tenant {tenant_id}",
            "extension_not_in_tenant",
        )
    return ExtensionTarget(extension.extension_id)


def _check_skills(route: DidRoute) -> None:
    """Refuse skills on a route to an extension: no queue would ever apply them."""
    if route.skills and isinstance(route.target, ExtensionTarget):
        invalid(
            "skills",
            "only a route to a queue can require skills; this one goes to extension"
            f' {route.target.extension_id} (give "skills": {{}} with it)',
            "skills_need_queue_target",
        )


async def _route_for(tx: ConfigTransaction, caller: Principal, route_id: int) -> StoredRoute:
    stored = await tx.route(route_id)
    if stored is None or not caller.sees(stored.route.tenant_id):
        not_found(f"DID route {route_id} not found")
    return stored


async def _check_did_free(tx: ConfigTransaction, route: DidRoute, route_id: int | None) -> None:
    other = await tx.route_by_did(route.tenant_id, route.did)
    if other is not None and other.id != route_id:
        conflict(f'did: "{route.did}" already has a route in tenant {route.tenant_id} ({other.id})')


@router.get("", summary="List DID routes")
async def list_routes(listing: ListQuery) -> Page[DidRouteOut]:
    """The DID routes the caller sees, by id."""
    return await listing.page(ConfigTransaction.routes, route_out)


@router.post("", status_code=status.HTTP_201_CREATED, summary="Create a DID route")
async def create_route(body: DidRouteCreate, context: Context, caller: Caller) -> DidRouteOut:
    """Route a DID of the tenant to one of its queues (with skills) or extensions."""
    async with context.write(caller) as write:
        tenant = await tenant_for(write.tx, caller, body.tenant_id, field_name="tenant_id")
        target = await _target(
            write.tx,
            tenant.tenant_id,
            None if body.queue_id is MISSING else body.queue_id,
            None if body.extension_id is MISSING else body.extension_id,
        )
        route = DidRoute(tenant.tenant_id, body.did, target, skills=body.skills)
        _check_skills(route)
        await _check_did_free(write.tx, route, None)
        stored = await write.tx.insert_route(route)
        write.events.append(DidRouteSaved(route))
        write.changed("did_route", stored.id, route.tenant_id, None, route_out(stored))
    return route_out(stored)


@router.get("/{route_id}", summary="Read a DID route")
async def read_route(route_id: PathId, context: Context, caller: Caller) -> DidRouteOut:
    """One DID route."""
    async with context.read() as tx:
        return route_out(await _route_for(tx, caller, route_id))


@router.patch("/{route_id}", summary="Change a DID route")
async def update_route(
    route_id: PathId, body: DidRouteUpdate, context: Context, caller: Caller
) -> DidRouteOut:
    """Change a route's DID or skills, or retarget it (give `queue_id` or `extension_id`).

    A route with skills goes to an extension only with ``"skills": {}``.
    """
    async with context.write(caller) as write:
        old = await _route_for(write.tx, caller, route_id)
        route = old.route
        if body.did is not MISSING:
            route = replace(route, did=body.did)
            await _check_did_free(write.tx, route, old.id)
        if body.queue_id is not MISSING or body.extension_id is not MISSING:
            target = await _target(
                write.tx,
                route.tenant_id,
                None if body.queue_id is MISSING else body.queue_id,
                None if body.extension_id is MISSING else body.extension_id,
            )
            route = replace(route, target=target)
        if body.skills is not MISSING:
            route = replace(route, skills=body.skills)
        _check_skills(route)
        new = StoredRoute(old.id, route)
        if new != old:
            await write.tx.update_route(new)
            events: list[ConfigEvent] = []
            if route.did != old.route.did:
                events.append(DidRouteRemoved(route.tenant_id, old.route.did))
            events.append(DidRouteSaved(route))
            write.events += events
            write.changed("did_route", new.id, route.tenant_id, route_out(old), route_out(new))
    return route_out(new)


@router.delete("/{route_id}", status_code=status.HTTP_204_NO_CONTENT, summary="Delete a DID route")
async def delete_route(route_id: PathId, context: Context, caller: Caller) -> None:
    """Delete a DID route: calls to the DID are then rejected (``no_route``)."""
    async with context.write(caller) as write:
        stored = await _route_for(write.tx, caller, route_id)
        await write.tx.delete_route(stored.id)
        write.events.append(DidRouteRemoved(stored.route.tenant_id, stored.route.did))
        write.changed("did_route", stored.id, stored.route.tenant_id, route_out(stored), None)
