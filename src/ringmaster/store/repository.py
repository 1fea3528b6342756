"""The access patterns every resource of the configuration shares, over one transaction.

One helper per pattern (find one, list all, a page, a write), so that each resource's
accessor in `ConfigTransaction` is its statement and its row converter, not the loop.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from ringmaster.engine.model import TenantId
from ringmaster.store.backend import Connection
from ringmaster.store.config_rows import Row
from ringmaster.store.records import Page, StoreError
from ringmaster.store.sqlite import statements as sql

T = TypeVar("T")


class Repository:
    """Reads and writes on a connection inside a transaction, refused once it is over."""

    def __init__(self, db: Connection) -> None:
        self._db = db
        self._open = True

    def _check_open(self) -> None:
        if not self._open:
            raise StoreError("the transaction is over; open a new one with Store.transaction()")

    def _close(self) -> None:
        self._open = False

    async def _find(self, query: str, params: Sequence[Any], read: Callable[[Row], T]) -> T | None:
        self._check_open()
        rows = list(await self._db.fetch_all(query, params))
        return read(tuple(rows[0])) if rows else None

    async def _all(self, query: str, params: Sequence[Any], read: Callable[[Row], T]) -> list[T]:
        self._check_open()
        return [read(tuple(row)) for row in await self._db.fetch_all(query, params)]

    async def _page(
        self,
        table: sql.Table,
        read: Callable[[Row], T],
        tenant_id: TenantId | None,
        limit: int,
        offset: int,
    ) -> Page[T]:
        self._check_open()
        count, page = table.page(narrowed=tenant_id is not None)
        params = () if tenant_id is None else (tenant_id,)
        ((total,),) = await self._db.fetch_all(count, params)
        rows = await self._db.fetch_all(page, (*params, limit, offset))
        return Page([read(tuple(row)) for row in rows], int(total))

    async def _write(self, statement: str, params: Sequence[Any]) -> bool:
        """Run an insert, update or delete; whether it touched any row."""
        self._check_open()
        return await self._db.execute(statement, params) > 0
