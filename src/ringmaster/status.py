"""`ringmaster status`: the running daemon's queues, as Asterisk's ``queue show`` lists them.

A client of the daemon's admin API (the standard library's HTTP, nothing of the
daemon's own imports): for each queue the caller's token sees, its live figures
(``/api/queues/{id}/snapshot``), its agents' states and since when they are in
them (``/agents``, ``state_since``: blank when the agent history does not say) and
its waiting callers (``/calls``), as a terminal table. Today's figures come from
the interval report (``/api/reports/queues``, ``interval=1d``) for the tenant's
local day, in the tenant's ``timezone`` (``/api/tenants/{id}``): midnight to the
next, so a call the daemon took a moment after this clock's "now" counts too. The
running figures since the queue was created, the daemon's own, follow on a line
of their own. A daemon in a cluster (``/api/cluster``, admin tokens only) gets a
short section first: this node, the nodes, and each shard's holder, epoch and tenants.
"""

from __future__ import annotations

import argparse
import sys
import time
import urllib.parse
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from http import HTTPStatus
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from ringmaster.client import ApiClient, ApiError, api_address

_PAGE = 1000


@dataclass(frozen=True, slots=True)
class AgentLine:
    """An agent of a queue, as the table shows it."""

    number: str
    name: str
    state: str
    #: Since when it is in `state` (Unix seconds); None when the history does not say.
    since: float | None = None


@dataclass(frozen=True, slots=True)
class Today:
    """A queue's figures of the tenant's local day, from the interval report."""

    day: date
    timezone: str
    offered: int = 0
    answered: int = 0
    abandoned: int = 0
    answered_within: int = 0
    service_level_pct: float | None = None


@dataclass(frozen=True, slots=True)
class CallerLine:
    """A call waiting in a queue, as the table shows it."""

    position: int
    call_id: str
    wait_s: float
    priority: int
    state: str
    caller_id: str
    caller_name: str
    ringing: list[str]


@dataclass(frozen=True, slots=True)
class QueueView:
    """A queue's live figures, agents and callers, as the table shows them."""

    queue_id: int
    tenant_id: int
    number: str
    name: str
    strategy: str
    status: str
    waiting: int
    longest_wait_s: float
    offered: int
    answered: int
    abandoned: int
    overflowed: int
    service_level_s: int
    answered_within: int
    service_level_pct: float | None
    agents: list[AgentLine]
    callers: list[CallerLine]
    today: Today


@dataclass(frozen=True, slots=True)
class NodeLine:
    """A node of the cluster, as its last heartbeat left it."""

    node: str
    last_seen_s_ago: float
    alive: bool


@dataclass(frozen=True, slots=True)
class ShardLine:
    """A tenant shard: its holder (None when free or lapsed), epoch and tenants."""

    shard: int
    holder: str | None
    epoch: int
    tenants: list[int]


@dataclass(frozen=True, slots=True)
class ClusterStatus:
    """The cluster as the daemon's database says (``/api/cluster``)."""

    node: str
    nodes: list[NodeLine]
    shards: list[ShardLine]


def run(args: argparse.Namespace) -> int:
    """Run ``ringmaster status``; returns the exit status (1 with one line on stderr)."""
    try:
        url, token = api_address(args)
        now = time.time()
        cluster = fetch_cluster(url, token)
        views = fetch(url, token, args.tenant, now)
    except ApiError as error:
        print(f"ringmaster status: {error}", file=sys.stderr)
        return 1
    sys.stdout.write(render(views, now, cluster))
    return 0


# --- reading the API ---------------------------------------------------------------------


def fetch(url: str, token: str | None, tenant_id: int | None, now: float) -> list[QueueView]:
    """Every queue the token sees (of `tenant_id` only, if given), read live from the API.

    Args:
        url: The API's base URL.
        token: The bearer token, if any.
        tenant_id: Only this tenant's queues.
        now: Unix seconds: "today" is the local day, in each tenant's time zone, of it.

    Raises:
        ApiError: The API cannot be reached, refuses the token, or answers
            something else than it should.
    """
    api = _Queues(url, token)
    views: list[QueueView] = []
    days: dict[int, tuple[Today, dict[int, Today]]] = {}
    for queue in api.queues(tenant_id):
        queue_id = queue["id"]
        snapshot = api.get_json(f"/api/queues/{queue_id}/snapshot")
        agents = api.get_json(f"/api/queues/{queue_id}/agents")
        calls = api.get_json(f"/api/queues/{queue_id}/calls")
        tenant = _field(queue, "tenant_id")
        if tenant not in days:
            days[tenant] = _today(api, tenant, now)
        # A queue without a call today is not in the report: its day is all zeros.
        quiet, by_queue = days[tenant]
        today = by_queue.get(queue_id, quiet)
        views.append(_view(queue, snapshot, agents, calls, today))
    return views


def fetch_cluster(url: str, token: str | None) -> ClusterStatus | None:
    """The cluster as ``/api/cluster`` says; None without one, or when the token may not see it.

    A tenant token is refused the cluster (403: it names every tenant), and a daemon
    older than the endpoint has none (404): the queues are shown all the same.

    Raises:
        ApiError: The API cannot be reached, refuses the token, or answers
            something else than it should.
    """
    try:
        answer = ApiClient(url, token).get_json("/api/cluster")
    except ApiError as error:
        if error.status in (HTTPStatus.FORBIDDEN, HTTPStatus.NOT_FOUND):
            return None
        raise
    return cluster_status(answer)


def cluster_status(answer: Any) -> ClusterStatus | None:
    """``/api/cluster``'s answer as the section shows it; None when ``shards`` is 0.

    Raises:
        ApiError: The answer misses a field.
    """
    try:
        if not answer["shards"]:
            return None
        return ClusterStatus(
            node=answer["node"],
            nodes=[NodeLine(n["node"], n["last_seen_s_ago"], n["alive"]) for n in answer["nodes"]],
            shards=[
                ShardLine(s["shard"], s["holder"], s["epoch"], s["tenants"])
                for s in answer["shard_list"]
            ],
        )
    except (KeyError, TypeError) as error:
        raise ApiError(
            f"unexpected answer from the API (missing {error}): is it Ringmaster's?"
        ) from None


def _field(answer: Any, name: str) -> Any:
    try:
        return answer[name]
    except (KeyError, TypeError):
        raise ApiError(
            f"unexpected answer from the API (missing {name!r}): is it Ringmaster's?"
        ) from None


def _today(api: _Queues, tenant_id: int, now: float) -> tuple[Today, dict[int, Today]]:
    """The tenant's local day without calls, and its queues' figures of it by queue id."""
    timezone = _field(api.get_json(f"/api/tenants/{tenant_id}"), "timezone")
    try:
        zone = ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise ApiError(
            f"tenant {tenant_id}'s time zone {timezone!r} is unknown on this host"
        ) from None
    day = datetime.fromtimestamp(now, zone).date()
    start = datetime(day.year, day.month, day.day, tzinfo=zone)
    after = day + timedelta(days=1)
    end = datetime(after.year, after.month, after.day, tzinfo=zone)
    query = urllib.parse.urlencode(
        {
            "tenant_id": tenant_id,
            "from": start.isoformat(),
            "to": end.isoformat(),
            "interval": "1d",
        }
    )
    report = api.get_json(f"/api/reports/queues?{query}")
    figures: dict[int, Today] = {}
    try:
        for item in report["items"]:
            figures[item["queue_id"]] = Today(
                day,
                timezone,
                item["offered"],
                item["answered"],
                item["abandoned"],
                item["answered_within"],
                item["service_level_pct"],
            )
    except (KeyError, TypeError) as error:
        raise ApiError(
            f"unexpected answer from the API (missing {error}): is it Ringmaster's?"
        ) from None
    return Today(day, timezone), figures


def _since(value: str | None) -> float | None:
    return None if value is None else datetime.fromisoformat(value).timestamp()


def _view(
    queue: dict[str, Any], snapshot: dict[str, Any], agents: Any, calls: Any, today: Today
) -> QueueView:
    try:
        return QueueView(
            queue_id=queue["id"],
            tenant_id=queue["tenant_id"],
            number=snapshot["queue_number"],
            name=snapshot["name"],
            strategy=snapshot["strategy"],
            status=snapshot["status"],
            waiting=snapshot["waiting"],
            longest_wait_s=snapshot["longest_wait_s"],
            offered=snapshot["offered"],
            answered=snapshot["answered"],
            abandoned=snapshot["abandoned"],
            overflowed=snapshot["overflowed"],
            service_level_s=snapshot["service_level_s"],
            answered_within=snapshot["answered_within"],
            service_level_pct=snapshot["service_level_pct"],
            agents=[
                AgentLine(a["number"], a["name"], a["status"], _since(a.get("state_since")))
                for a in agents
            ],
            callers=[
                CallerLine(
                    c["position"],
                    c["call_id"],
                    c["wait_s"],
                    c["priority"],
                    c["state"],
                    c["caller_id"],
                    c["caller_name"],
                    c["ringing"],
                )
                for c in calls
            ],
            today=today,
        )
    except (KeyError, TypeError, ValueError) as error:
        raise ApiError(
            f"unexpected answer from the API (missing {error}): is it Ringmaster's?"
        ) from None


class _Queues(ApiClient):
    """The API client, with the queue list read across its pages."""

    def queues(self, tenant_id: int | None) -> list[dict[str, Any]]:
        """Every queue the token sees (of `tenant_id` only, if given), all pages."""
        queues: list[dict[str, Any]] = []
        while True:
            query = {"limit": _PAGE, "offset": len(queues)}
            if tenant_id is not None:
                query["tenant_id"] = tenant_id
            page = self.get_json(f"/api/queues?{urllib.parse.urlencode(query)}")
            try:
                queues += page["items"]
                if not page["items"] or len(queues) >= page["total"]:
                    return queues
            except (KeyError, TypeError):
                raise ApiError(
                    f"unexpected answer from {self.url}: is it Ringmaster's API?"
                ) from None


# --- the table ---------------------------------------------------------------------------


def render(views: Sequence[QueueView], now: float, cluster: ClusterStatus | None = None) -> str:
    """The queues as text, one block each (Asterisk's ``queue show``, in columns).

    Args:
        views: The queues.
        now: Unix seconds, the instant each agent's time in state runs to.
        cluster: The cluster, shown first; None (no cluster) shows nothing of it.
    """
    first = "" if cluster is None else render_cluster(cluster) + "\n"
    if not views:
        return first + "no queues\n"
    return first + "\n".join(_block(view, now) for view in views)


def render_cluster(cluster: ClusterStatus) -> str:
    """This node, the nodes (down ones with their heartbeat's age), one line per shard."""
    nodes = ", ".join(
        n.node if n.alive else f"{n.node} (down, seen {duration(n.last_seen_s_ago)} ago)"
        for n in cluster.nodes
    )
    held = sum(1 for s in cluster.shards if s.holder is not None)
    lines = [
        f"cluster: node {cluster.node}, {held} of {len(cluster.shards)} shards held",
        f"  nodes: {nodes or 'none seen'}",
        "  Shards:",
        *_table(
            ("SHARD", "HOLDER", "EPOCH", "TENANTS"),
            [
                (
                    str(s.shard),
                    "(free)" if s.holder is None else s.holder,
                    str(s.epoch),
                    ", ".join(str(t) for t in s.tenants),
                )
                for s in cluster.shards
            ],
        ),
    ]
    return "".join(f"{line}\n" for line in lines)


def _block(view: QueueView, now: float) -> str:
    lines = [
        f"{view.number} {view.name} (queue {view.queue_id}, tenant {view.tenant_id}):"
        f" {view.strategy}, {view.status}",
        (
            f"  {view.waiting} call{'s' if view.waiting != 1 else ''} waiting,"
            f" longest wait {duration(view.longest_wait_s)}"
            if view.waiting
            else "  no calls waiting"
        ),
        f"  SL today {_today_level(view)}",
        f"  today: offered {view.today.offered}, answered {view.today.answered},"
        f" abandoned {view.today.abandoned}",
        f"  since created: offered {view.offered}, answered {view.answered},"
        f" abandoned {view.abandoned}, overflowed {view.overflowed}; SL "
        + ("--" if view.service_level_pct is None else f"{view.service_level_pct:.1f}%"),
    ]
    if view.agents:
        lines.append("  Agents:")
        lines += _table(
            ("EXT", "NAME", "STATE", "IN STATE"),
            [(a.number, a.name, a.state, _in_state(a, now)) for a in view.agents],
        )
    else:
        lines.append("  Agents: none enrolled")
    if view.callers:
        lines.append("  Callers:")
        lines += _table(
            ("POS", "CALL", "WAIT", "PRIO", "STATE", "CALLER", "RINGING"),
            [
                (
                    str(c.position),
                    c.call_id,
                    duration(c.wait_s),
                    str(c.priority),
                    c.state,
                    f"{c.caller_id} ({c.caller_name})" if c.caller_name else c.caller_id,
                    ", ".join(c.ringing),
                )
                for c in view.callers
            ],
        )
    else:
        lines.append("  Callers: none waiting")
    return "".join(f"{line}\n" for line in lines)


def _today_level(view: QueueView) -> str:
    today = view.today
    day = f"{today.day.isoformat()}, {today.timezone}"
    if today.service_level_pct is None:
        return f"-- within {view.service_level_s} s (no call answered yet; {day})"
    return (
        f"{today.service_level_pct:.1f}% within {view.service_level_s} s"
        f" ({today.answered_within} of {today.answered} answered; {day})"
    )


def _in_state(agent: AgentLine, now: float) -> str:
    # Blank when unknown; never negative when this host's clock is behind the daemon's.
    return "" if agent.since is None else duration(max(now - agent.since, 0.0))


def _table(headers: tuple[str, ...], rows: list[tuple[str, ...]]) -> list[str]:
    widths = [max(len(cell) for cell in column) for column in zip(headers, *rows, strict=True)]
    return [
        "    "
        + "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in (headers, *rows)
    ]


def duration(seconds: float) -> str:
    """``m:ss``, or ``h:mm:ss`` from an hour on; whole seconds, rounded down."""
    whole = int(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}:{minutes:02}:{secs:02}"
    return f"{minutes}:{secs:02}"
