"""`ringmaster report`: a day of a tenant's queues, hour by hour, from the running daemon's API.

A client of ``GET /api/reports/queues`` (docs/reports.md) over HTTP, like
`ringmaster status`: the tenant's time zone from ``/api/tenants/{id}`` makes the
day a local calendar day (23 or 25 hours when the clocks change); the hours come
from the report by ``1h`` and the day's totals from the same report by ``1d``
(exact: a day's service level or 90th percentile is no sum of its hours').
"""

from __future__ import annotations

import argparse
import sys
import urllib.parse
from collections.abc import Sequence
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from ringmaster.client import ApiClient, ApiError, api_address
from ringmaster.status import duration

#: The table's columns: heading, and the figure shown under it.
COLUMNS: tuple[tuple[str, str], ...] = (
    ("OFFERED", "offered"),
    ("ANSWERED", "answered"),
    ("ABANDONED", "abandoned"),
    ("SHORT", "short_abandoned"),
    ("OVERFLOWED", "overflowed"),
    ("REJECTED", "rejected"),
    ("SL%", "service_level_pct"),
    ("SL ALL%", "service_level_all_pct"),
    ("ASA", "asa_s"),
    ("AHT", "aht_s"),
    ("AVG WAIT", "avg_wait_s"),
    ("MAX WAIT", "max_wait_s"),
    ("P90 WAIT", "wait_p90_s"),
)


def run(args: argparse.Namespace) -> int:
    """Run ``ringmaster report``; returns the exit status (1 with one line on stderr)."""
    try:
        url, token = api_address(args)
        api = ApiClient(url, token)
        hours, day = fetch(api, args.tenant, args.queue, args.day)
    except ApiError as error:
        print(f"ringmaster report: {error}", file=sys.stderr)
        return 1
    sys.stdout.write(render(hours, day, args.queue))
    return 0


def day_range(day: date, zone: ZoneInfo) -> tuple[str, str]:
    """The local calendar day `day` in `zone`, as the report's ``from`` and ``to``."""
    start = datetime(day.year, day.month, day.day, tzinfo=zone)
    following = day + timedelta(days=1)
    end = datetime(following.year, following.month, following.day, tzinfo=zone)
    return start.isoformat(), end.isoformat()


def fetch(
    api: ApiClient, tenant_id: int, queue: str | None, day: date | None
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The queue report of the tenant's local `day` (today if None), by hour and whole.

    Raises:
        ApiError: The API cannot be read, or refuses.
    """
    tenant = api.get_json(f"/api/tenants/{tenant_id}")
    try:
        zone = ZoneInfo(tenant["timezone"])
    except (KeyError, TypeError, ValueError, ZoneInfoNotFoundError):
        raise ApiError("unexpected answer from the API: is it Ringmaster's?") from None
    since, until = day_range(day or datetime.now(zone).date(), zone)
    reports = []
    for interval in ("1h", "1d"):
        query = {"tenant_id": tenant_id, "from": since, "to": until, "interval": interval}
        reports.append(api.get_json(f"/api/reports/queues?{urllib.parse.urlencode(query)}"))
    hours, whole = reports
    if queue is not None and not any(i["queue_number"] == queue for i in hours["items"]):
        hours["items"], whole["items"] = [], []
    return hours, whole


def render(hours: dict[str, Any], day: dict[str, Any], queue: str | None = None) -> str:
    """The report as text: a table per queue, a line per hour with calls, the day's totals last."""
    start = datetime.fromisoformat(hours["start"])
    title = f"{start.date().isoformat()} ({hours['timezone']})"
    queues: dict[int, list[dict[str, Any]]] = {}
    for item in hours["items"]:
        if queue is None or item["queue_number"] == queue:
            queues.setdefault(item["queue_id"], []).append(item)
    if not queues:
        return f"{title}: no calls{f' in queue {queue}' if queue else ''}\n"
    totals = {item["queue_id"]: item for item in day["items"]}
    offsets = {datetime.fromisoformat(i["start"]).utcoffset() for i in hours["items"]}
    blocks = []
    for queue_id, items in queues.items():
        first = items[0]
        lines = [
            f"{first['queue_number']} {first['queue_name']} (queue {queue_id}), {title},"
            f" SL threshold: the queue's; short abandon: {day['short_abandon_s']:g} s"
        ]
        rows = [
            (_hour(i["start"], len(offsets) > 1), *_cells(i))
            for i in items
            if i["offered"] or i["rejected"]
        ]
        if queue_id in totals:
            rows.append(("DAY", *_cells(totals[queue_id])))
        lines += _table(("HOUR", *(heading for heading, _ in COLUMNS)), rows)
        blocks.append("".join(f"{line}\n" for line in lines))
    return "\n".join(blocks)


def _hour(start: str, with_offset: bool) -> str:
    # On a day the clocks change, an hour may come twice: the offset tells which.
    at = datetime.fromisoformat(start)
    return at.strftime("%H:%M") + (at.isoformat()[19:] if with_offset else "")


def _cells(item: dict[str, Any]) -> tuple[str, ...]:
    cells = []
    for _, name in COLUMNS:
        value = item[name]
        if value is None:
            cells.append("--")
        elif name.endswith("_pct"):
            cells.append(f"{value:.1f}")
        elif name.endswith("_s"):
            cells.append(duration(value))
        else:
            cells.append(str(value))
    return tuple(cells)


def _table(headers: Sequence[str], rows: list[tuple[str, ...]]) -> list[str]:
    widths = [max(len(cell) for cell in column) for column in zip(headers, *rows, strict=True)]
    return [
        "  "
        + "  ".join(
            cell.ljust(width) if index == 0 else cell.rjust(width)
            for index, (cell, width) in enumerate(zip(row, widths, strict=True))
        ).rstrip()
        for row in (tuple(headers), *rows)
    ]
