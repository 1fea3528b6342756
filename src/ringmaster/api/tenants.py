"""``/api/tenants``: the customers of the PBX; everything else belongs to one."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, status
from pydantic import MISSING

from ringmaster.api.auth import Caller, Principal
from ringmaster.api.context import (
    Context,
    ListQuery,
    conflict,
    names,
    tenant_for,
)
from ringmaster.api.schemas import (
    Page,
    PathId,
    TenantCreate,
    TenantOut,
    TenantUpdate,
)
from ringmaster.engine.events import TenantRemoved, TenantSaved
from ringmaster.engine.model import Tenant, TenantId
from ringmaster.store import ConfigTransaction

router = APIRouter(prefix="/api/tenants", tags=["tenants"])


def tenant_out(tenant: Tenant) -> TenantOut:
    """A tenant as the API reads it."""
    return TenantOut(id=tenant.tenant_id, name=tenant.name, timezone=tenant.timezone)


def _admin_only(caller: Principal) -> None:
    # Creating or deleting a tenant is not something within one tenant, so a tenant
    # token is refused outright (403 does not reveal any other tenant's existence).
    if not caller.is_admin:
        raise HTTPException(status.HTTP_403_FORBIDDEN, "an admin token is required")


@router.get("", summary="List tenants")
async def list_tenants(listing: ListQuery) -> Page[TenantOut]:
    """The tenants the caller sees, by id."""
    return await listing.page(ConfigTransaction.tenants, tenant_out)


@router.post("", status_code=status.HTTP_201_CREATED, summary="Create a tenant")
async def create_tenant(body: TenantCreate, context: Context, caller: Caller) -> TenantOut:
    """Create a tenant; without `id`, the next free id is assigned (admin only)."""
    _admin_only(caller)
    async with context.write(caller) as write:
        tenant_id = None if body.id is MISSING else TenantId(body.id)
        if tenant_id is not None and await write.tx.tenant(tenant_id) is not None:
            conflict(f"id: tenant {tenant_id} already exists")
        tenant = await write.tx.insert_tenant(tenant_id, body.name, body.timezone)
        write.events.append(TenantSaved(tenant))
        write.changed("tenant", tenant.tenant_id, tenant.tenant_id, None, tenant_out(tenant))
    return tenant_out(tenant)


@router.get("/{tenant_id}", summary="Read a tenant")
async def read_tenant(tenant_id: PathId, context: Context, caller: Caller) -> TenantOut:
    """One tenant."""
    async with context.read() as tx:
        return tenant_out(await tenant_for(tx, caller, tenant_id, field_name=None))


@router.patch("/{tenant_id}", summary="Rename a tenant or change its time zone")
async def update_tenant(
    tenant_id: PathId, body: TenantUpdate, context: Context, caller: Caller
) -> TenantOut:
    """Change a tenant's name or time zone (its id is fixed: it appears in MQTT topics)."""
    async with context.write(caller) as write:
        old = tenant = await tenant_for(write.tx, caller, tenant_id, field_name=None)
        tenant = Tenant(
            tenant.tenant_id,
            tenant.name if body.name is MISSING else body.name,
            tenant.timezone if body.timezone is MISSING else body.timezone,
        )
        if tenant != old:
            await write.tx.upsert_tenant(tenant.tenant_id, tenant.name, tenant.timezone)
            write.events.append(TenantSaved(tenant))
            write.changed(
                "tenant", tenant.tenant_id, tenant.tenant_id, tenant_out(old), tenant_out(tenant)
            )
    return tenant_out(tenant)


@router.delete(
    "/{tenant_id}", status_code=status.HTTP_204_NO_CONTENT, summary="Delete an empty tenant"
)
async def delete_tenant(tenant_id: PathId, context: Context, caller: Caller) -> None:
    """Delete a tenant that has no extensions, queues or DID routes left (admin only)."""
    async with context.write(caller) as write:
        # Visibility first: another tenant's id is a 404 for a tenant token, as everywhere.
        tenant = await tenant_for(write.tx, caller, tenant_id, field_name=None)
        _admin_only(caller)
        contents = await write.tx.tenant_contents(tenant.tenant_id)
        left = [f"{n} {kind.replace('_', ' ')}" for kind, n in contents.items() if n]
        if left:
            conflict(f"tenant {tenant_id} still has {names(left)}; delete them first")
        await write.tx.delete_tenant(tenant.tenant_id)
        write.events.append(TenantRemoved(tenant.tenant_id))
        write.changed("tenant", tenant.tenant_id, tenant.tenant_id, tenant_out(tenant), None)
