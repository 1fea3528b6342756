"""Which tenants changed: the service says so after each turn, the live streams wait for it.

Without FastAPI's import, so that the service holds one from its start (the API
is started later, see `ringmaster.daemon.service.Service._start_api`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable


class LiveFeed:
    """A version per tenant, bumped on each change; waiters wake on the next one.

    A stream reads the version, builds its board, then waits past that version:
    a change between the two is not lost, and many changes while the stream was
    busy wake it once. A change of every tenant (configuration) counts in every
    tenant's version, named before or not: a stream busy building its board when
    it comes would otherwise miss it.
    """

    def __init__(self) -> None:
        self._everyone = 0  # changes of every tenant
        self._versions: dict[int, int] = {}
        self._waiters: dict[int, asyncio.Event] = {}
        self._closed = False

    def version(self, tenant_id: int) -> int:
        """The tenant's current version (0 before its first change)."""
        return self._everyone + self._versions.get(tenant_id, 0)

    def changed(self, tenant_ids: Iterable[int]) -> None:
        """Say that these tenants' live state changed (calls, agents, configuration)."""
        for tenant_id in set(tenant_ids):
            self._versions[tenant_id] = self._versions.get(tenant_id, 0) + 1
            waiter = self._waiters.pop(tenant_id, None)
            if waiter is not None:
                waiter.set()

    def changed_all(self) -> None:
        """Every tenant changed (the restore, a configuration change)."""
        self._everyone += 1
        for waiter in self._waiters.values():
            waiter.set()
        self._waiters.clear()

    async def wait(self, tenant_id: int, seen: int) -> int:
        """Wait until the tenant's version is past `seen` (or the feed closes).

        Returns:
            The tenant's version then.
        """
        while not self._closed and self.version(tenant_id) == seen:
            waiter = self._waiters.get(tenant_id)
            if waiter is None:
                waiter = self._waiters[tenant_id] = asyncio.Event()
            await waiter.wait()
        return self.version(tenant_id)

    @property
    def closed(self) -> bool:
        """True once `close` was called: the streams end."""
        return self._closed

    def close(self) -> None:
        """End every wait, now and to come (the API is stopping)."""
        self._closed = True
        for waiter in self._waiters.values():
            waiter.set()
        self._waiters.clear()
