"""Which requests this daemon can serve (FastAPI-free: the daemon raises it at start-up speed)."""

from __future__ import annotations

from ringmaster.engine.model import TenantId


class NotServedHere(Exception):  # noqa: N818 - a refusal, named as the API answers it
    """The tenant's shard is not held by this node (a cluster): ask its holder.

    Attributes:
        tenant_id: The tenant asked about; None when a change of configuration was
            under way as its shard stopped here (the new holder reads it from the store).
    """

    def __init__(self, tenant_id: TenantId | None) -> None:
        whose = "this tenant" if tenant_id is None else f"tenant {tenant_id}"
        super().__init__(f"{whose} is served by another node of the cluster (see GET /api/cluster)")
        self.tenant_id = tenant_id
