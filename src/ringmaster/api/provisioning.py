"""Provisioning as a write: a file applied in one transaction with its audit records.

Two ways in, one path: ``ringmaster provision FILE`` on the database file itself
(`provision`, when no daemon runs), and ``POST /api/provision`` through the running
daemon, which then hands the engine what changed, so the file takes effect at once.
Either way everything is checked before anything is written, and the writes and
their audit records are one transaction: all or nothing.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from http import HTTPStatus
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, Request, status
from fastapi.responses import JSONResponse

from ringmaster.api.audit import changes, snapshot
from ringmaster.api.auth import Caller
from ringmaster.api.context import Context, log_change
from ringmaster.api.schemas import Error, ProvisionErrors, ProvisionOut, TallyOut
from ringmaster.engine.config_diff import config_changes
from ringmaster.engine.events import ConfigEvent
from ringmaster.provision import (
    ProvisionError,
    ProvisionFile,
    ProvisionReport,
    apply,
    load_file,
    load_text,
    tenants_of,
)
from ringmaster.store import AuditRecord, ConfigTransaction, Store

#: What the error lines call a file sent without a `name`.
REQUEST_NAME = "<request>"
#: The body's media types: TOML has its own since 2024 (RFC 9618); plain text is what
#: most clients send a file as.
MEDIA_TYPES = ("application/toml", "text/plain")

router = APIRouter(prefix="/api/provision", tags=["provisioning"])


@dataclass(frozen=True, slots=True)
class Provisioned:
    """What one provisioning wrote: the report, the engine's events, the audit records."""

    report: ProvisionReport
    events: list[ConfigEvent]
    records: list[tuple[AuditRecord, int]]


async def provision_in(
    tx: ConfigTransaction, spec: ProvisionFile, name: str, *, actor: str, at: float
) -> Provisioned:
    """Check `spec` against the store and write it in `tx`, with one audit record per change.

    Args:
        tx: The open transaction: the caller commits it, or rolls it back on error.
        spec: The file, checked on its own.
        name: What the error lines call the file.
        actor: Who provisions, as the audit trail names them.
        at: Unix seconds, for the audit records.

    Raises:
        ProvisionError: The file is invalid; nothing was written.
    """
    tenants = tenants_of(spec)
    config = await tx.load_config()
    before = await snapshot(tx, tenants)
    report = await apply(tx, spec, name)
    records = changes(before, await snapshot(tx, tenants), actor=actor, at=at)
    events = config_changes(config, await tx.load_config()) if report.changed else []
    ids = [await tx.insert_audit(record) for record in records]
    return Provisioned(report, events, list(zip(records, ids, strict=True)))


async def provision(
    path: Path, store: Store, *, clock: Callable[[], float] = time.time
) -> ProvisionReport:
    """Check the provisioning file at `path` against itself and the store, then apply it.

    The database file's path, for when no daemon runs: a running daemon would see
    the change only once restarted (``POST /api/provision`` is the path through it).
    The audit records' actor is ``provision``.

    Args:
        path: The TOML file.
        store: The open store to provision.
        clock: Wall-clock time, for the audit records.

    Returns:
        What was created, updated or already up to date.

    Raises:
        ProvisionError: The file is invalid; the message has one line per problem and
            the store is unchanged.
    """
    spec = load_file(path)
    async with store.transaction() as tx:
        done = await provision_in(tx, spec, str(path), actor="provision", at=clock())
    for record, record_id in done.records:
        log_change(record, record_id)
    return done.report


def _report_out(report: ProvisionReport) -> ProvisionOut:
    tallies = {
        kind: TallyOut(created=t.created, updated=t.updated, unchanged=t.unchanged)
        for kind, t in report.tallies().items()
    }
    return ProvisionOut(**tallies, changed=report.changed)


_BODY = {
    "required": True,
    "content": {
        media: {"schema": {"type": "string", "description": "A provisioning file (TOML)."}}
        for media in MEDIA_TYPES
    },
}


@router.post(
    "",
    summary="Apply a provisioning file, in effect at once",
    response_model=ProvisionOut,
    openapi_extra={"requestBody": _BODY},
    responses={
        400: {"model": Error, "description": "The body is not UTF-8"},
        403: {"model": Error, "description": "Needs an admin token"},
        415: {"model": Error, "description": "The body is not TOML or plain text"},
        422: {"model": ProvisionErrors, "description": "The file is invalid; nothing changed"},
    },
)
async def provision_file(
    request: Request,
    context: Context,
    caller: Caller,
    name: Annotated[
        str,
        # Not length-checked: FastAPI's own 422 would not be this route's 422 (its lines).
        Query(
            description="What the error lines call the file"
            " (`ringmaster provision` sends its path)."
        ),
    ] = REQUEST_NAME,
) -> ProvisionOut | JSONResponse:
    """Apply a provisioning file (the format of `ringmaster provision`), admin only.

    The file is checked against itself and the store, then written in one transaction
    with its audit records (all or nothing, as `ringmaster provision` on the database
    file), and what changed is applied to the running engine before this answers: a
    new queue routes calls, a newly enrolled agent is rung, at once. An invalid file
    answers 422 with one line per problem, and changes nothing.
    """
    if not caller.is_admin:
        raise HTTPException(status.HTTP_403_FORBIDDEN, "an admin token is required")
    name = name or REQUEST_NAME
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media not in MEDIA_TYPES:
        raise HTTPException(
            status.HTTP_415_UNSUPPORTED_MEDIA_TYPE,
            f"send the file as {' or '.join(MEDIA_TYPES)}",
        )
    try:
        text = (await request.body()).decode("utf-8")
    except UnicodeDecodeError:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, "the body is not UTF-8") from None
    try:
        spec = load_text(text, name)
        async with context.writes:
            async with context.store.transaction() as tx:
                done = await provision_in(tx, spec, name, actor=caller.name, at=context.clock())
            for record, record_id in done.records:
                log_change(record, record_id)
            if done.events:
                await context.host.apply(done.events)
    except ProvisionError as error:
        return JSONResponse(
            ProvisionErrors(detail=list(error.errors)).model_dump(),
            status_code=HTTPStatus.UNPROCESSABLE_ENTITY,
        )
    return _report_out(done.report)
