"""``/healthz`` and ``/readyz``: the daemon's health for probes, without a token.

A probe (a load balancer, Kubernetes, a monitoring check) holds no token, and these
answers need none: they say nothing of any tenant, only whether the daemon's event
loop turns and whether it serves calls. Neither touches the authenticator, so a
probe's wrong token is not counted against its address either.
"""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Response, status
from pydantic import BaseModel, Field

from ringmaster.api.context import Context

router = APIRouter(tags=["health"])


class Health(BaseModel):
    """The event loop turns: the request was served."""

    status: Literal["ok"]


class Readiness(BaseModel):
    """Whether the daemon serves calls, and if not, why."""

    status: Literal["ready", "not_ready"]
    reasons: list[str] = Field(
        description="Why it is not ready (empty when ready), e.g. `mqtt: not connected`."
    )


@router.get("/healthz", summary="Is the daemon alive?")
async def healthz() -> Health:
    """``{"status": "ok"}`` whenever the daemon's event loop turns.

    The API is served in the daemon's own event loop, so an answer at all proves it
    turns (as the systemd watchdog's pings do); a stuck loop answers nothing.
    """
    return Health(status="ok")


@router.get(
    "/readyz",
    summary="Does the daemon serve calls?",
    responses={
        status.HTTP_503_SERVICE_UNAVAILABLE: {
            "model": Readiness,
            "description": "Not ready: `reasons` says why",
        }
    },
)
async def readyz(context: Context, response: Response) -> Readiness:
    """200 once the store is loaded and the MQTT session is subscribed with its backlog in.

    503 otherwise, with every reason: the store not loaded yet, MQTT not connected
    (say, the broker is down), the session's backlog not taken in yet (for at most
    2 s after each connection), or the daemon stopping.
    """
    reasons = context.host.not_ready()
    if reasons:
        response.status_code = status.HTTP_503_SERVICE_UNAVAILABLE
        return Readiness(status="not_ready", reasons=reasons)
    return Readiness(status="ready", reasons=[])
