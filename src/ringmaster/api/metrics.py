"""``GET /metrics``: the daemon's metrics in Prometheus's text format, for an admin.

A scrape reads every tenant's queues, so a tenant token is refused (403): the
figures of one tenant are in the tenant's own API views and MQTT snapshots. With
no token configured (loopback only) every caller is an admin, as for the rest of
the API. The route is async on purpose: the gauges are read from the engine
in the event loop, between turns, never from a worker thread during one.
"""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Request, Response, status
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from ringmaster.api.auth import Caller

router = APIRouter(tags=["metrics"])


@router.get(
    "/metrics",
    summary="Prometheus metrics",
    response_class=Response,
    responses={
        200: {"content": {CONTENT_TYPE_LATEST: {}}, "description": "The text format"},
        403: {"description": "Needs an admin token"},
    },
)
async def metrics(request: Request, caller: Caller) -> Response:
    """Every metric of the daemon (see docs/metrics.md); admin only."""
    if not caller.is_admin:
        raise HTTPException(status.HTTP_403_FORBIDDEN, "an admin token is required")
    registry: CollectorRegistry = request.app.state.metrics
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)
