"""``/api/extensions``: a tenant's phone numbers; enrolled in a queue, an extension is an agent."""

from __future__ import annotations

from dataclasses import replace

from fastapi import APIRouter, status
from pydantic import MISSING

from ringmaster.api.auth import Caller
from ringmaster.api.context import (
    Context,
    ListQuery,
    conflict,
    extension_for,
    queues_named,
    refuse_if_a_target,
    tenant_for,
)
from ringmaster.api.schemas import (
    ExtensionCreate,
    ExtensionOut,
    ExtensionUpdate,
    Page,
    PathId,
)
from ringmaster.engine.events import ExtensionRemoved, ExtensionSaved
from ringmaster.engine.model import Extension, ExtensionTarget
from ringmaster.store import ConfigTransaction

router = APIRouter(prefix="/api/extensions", tags=["extensions"])


def extension_out(extension: Extension) -> ExtensionOut:
    """An extension as the API reads it."""
    return ExtensionOut(
        id=extension.extension_id,
        tenant_id=extension.tenant_id,
        number=extension.number,
        name=extension.name,
        skills=dict(extension.skills),
    )


@router.get("", summary="List extensions")
async def list_extensions(listing: ListQuery) -> Page[ExtensionOut]:
    """The extensions the caller sees, by id."""
    return await listing.page(ConfigTransaction.extensions, extension_out)


@router.post("", status_code=status.HTTP_201_CREATED, summary="Create an extension")
async def create_extension(body: ExtensionCreate, context: Context, caller: Caller) -> ExtensionOut:
    """Create an extension, with its skills; its number must be free within the tenant."""
    async with context.write(caller) as write:
        tenant = await tenant_for(write.tx, caller, body.tenant_id, field_name="tenant_id")
        if await write.tx.extension_by_number(tenant.tenant_id, body.number) is not None:
            conflict(
                f'number: extension "{body.number}" already exists in tenant {tenant.tenant_id}'
            )
        extension = await write.tx.insert_extension(
            tenant.tenant_id, body.number, body.name, skills=body.skills
        )
        write.events.append(ExtensionSaved(extension))
        write.changed(
            "extension", extension.extension_id, extension.tenant_id, None, extension_out(extension)
        )
    return extension_out(extension)


@router.get("/{extension_id}", summary="Read an extension")
async def read_extension(extension_id: PathId, context: Context, caller: Caller) -> ExtensionOut:
    """One extension."""
    async with context.read() as tx:
        return extension_out(await extension_for(tx, caller, extension_id))


@router.patch("/{extension_id}", summary="Change an extension")
async def update_extension(
    extension_id: PathId, body: ExtensionUpdate, context: Context, caller: Caller
) -> ExtensionOut:
    """Change an extension's number, name or skills; a new number must be free in the tenant.

    The running engine sees new skills at once, without a restart.
    """
    async with context.write(caller) as write:
        old = await extension_for(write.tx, caller, extension_id)
        new = old
        if body.number is not MISSING and body.number != old.number:
            if await write.tx.extension_by_number(old.tenant_id, body.number) is not None:
                conflict(
                    f'number: extension "{body.number}" already exists in tenant {old.tenant_id}'
                )
            new = replace(new, number=body.number)
        if body.name is not MISSING:
            new = replace(new, name=body.name)
        if body.skills is not MISSING:
            new = replace(new, skills=body.skills)
        if new != old:
            await write.tx.update_extension(new)
            write.events.append(ExtensionSaved(new))
            write.changed(
                "extension", new.extension_id, new.tenant_id, extension_out(old), extension_out(new)
            )
    return extension_out(new)


@router.delete(
    "/{extension_id}", status_code=status.HTTP_204_NO_CONTENT, summary="Delete an extension"
)
async def delete_extension(extension_id: PathId, context: Context, caller: Caller) -> None:
    """Delete an extension that is in no queue, no DID route's target, no queue's overflow.

    The product documentation warns that deleting an enrolled extension leaves it
    enrolled and causes routing errors; Ringmaster refuses instead (409), naming the
    queues (or routes) to take it out of first.
    """
    async with context.write(caller) as write:
        extension = await extension_for(write.tx, caller, extension_id)
        queues = await write.tx.queues_of(extension.extension_id)
        if queues:
            conflict(
                f"extension {extension_id} is enrolled in {queues_named(queues)};"
                f" unenrol it first (DELETE /api/queues/{{id}}/agents/{extension_id})"
            )
        await refuse_if_a_target(
            write.tx, ExtensionTarget(extension.extension_id), f"extension {extension_id}"
        )
        await write.tx.delete_extension(extension.extension_id)
        write.events.append(ExtensionRemoved(extension.extension_id))
        write.changed(
            "extension", extension.extension_id, extension.tenant_id, extension_out(extension), None
        )
