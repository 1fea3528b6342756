# ruff: noqa: D102  # the protocols' properties are the store rows' fields, named there
"""Asterisk's queue_log, rendered from the call and agent history (docs/queue_log.md).

Pure, like `ringmaster.history`: `render` takes history rows (the store's
`VisitRow`, `RingRow` and `ActivityRow` fit the protocols below) and gives the
lines Asterisk's app_queue would have written for the same calls, in time order,
in its file format ``epoch|callid|queuename|agent|EVENT|data1|data2|...``.

What each line holds, and which ringmaster outcome becomes which event:

- ``callid``: the call's id (Asterisk: the caller channel's uniqueid); ``NONE``
  for an agent's lines, as Asterisk's pause lines;
- ``queuename``: the queue's number at the time (unique in its tenant, never
  renamed in the history, as Asterisk's queue names are in FreePBX);
- ``agent``: `agent_format` with the extension number, ``Local/{number}`` by
  default (Asterisk: the member's name or interface), ``NONE`` for a caller's line;
- times are whole seconds as Asterisk's (``time(NULL)`` differences), ring times
  of ``RINGNOANSWER`` in milliseconds.
"""

from __future__ import annotations

from bisect import bisect_left, insort
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Final, Protocol

#: The default of `history.queue_log_agent`: a queue member as a Local channel.
DEFAULT_AGENT_FORMAT: Final = "Local/{number}"
NONE: Final = "NONE"

#: Ring outcomes that Asterisk logs as RINGNOANSWER: its `rna()` runs on a ring
#: timeout and on a busy or congested member alike.
_NOT_ANSWERED: Final = frozenset({"timeout", "busy", "rejected", "unreachable", "no_answer"})


class Ring(Protocol):
    """A ring of a call (`ringmaster.store.history.RingRow` fits)."""

    @property
    def ring_id(self) -> str: ...
    @property
    def extension(self) -> str: ...
    @property
    def started_at(self) -> float: ...
    @property
    def ended_at(self) -> float | None: ...
    @property
    def outcome(self) -> str | None: ...


class Visit(Protocol):
    """A call's visit to a queue, with its rings (`ringmaster.store.history.VisitRow` fits)."""

    @property
    def id(self) -> int: ...
    @property
    def tenant_id(self) -> int: ...
    @property
    def call_id(self) -> str: ...
    @property
    def queue_id(self) -> int | None: ...
    @property
    def queue_number(self) -> str | None: ...
    @property
    def caller_id(self) -> str: ...
    @property
    def priority(self) -> int: ...
    @property
    def arrived_at(self) -> float: ...
    @property
    def entered_at(self) -> float: ...
    @property
    def position(self) -> int | None: ...
    @property
    def callback_number(self) -> str | None: ...
    @property
    def answered_at(self) -> float | None: ...
    @property
    def ended_at(self) -> float | None: ...
    @property
    def outcome(self) -> str | None: ...
    @property
    def reason(self) -> str: ...
    @property
    def rings(self) -> Sequence[Ring]: ...


class Activity(Protocol):
    """An agent activity (`ringmaster.store.history.ActivityRow` fits)."""

    @property
    def tenant_id(self) -> int: ...
    @property
    def extension(self) -> str: ...
    @property
    def at(self) -> float: ...
    @property
    def kind(self) -> str: ...
    @property
    def reason(self) -> str: ...
    @property
    def queue_id(self) -> int | None: ...


@dataclass(frozen=True, slots=True)
class Line:
    """One queue_log line; `text` is it as Asterisk writes it (without the newline)."""

    at: float
    callid: str
    queue: str
    agent: str
    event: str
    data: tuple[str, ...] = ()

    @property
    def text(self) -> str:
        """``epoch|callid|queuename|agent|EVENT|data...``.

        Asterisk writes the ``|`` after the event even when there is no data.
        """
        head = (str(int(self.at)), self.callid, self.queue, self.agent, self.event)
        return "|".join(_clean(field) for field in (*head, *(self.data or ("",))))

    @property
    def fields(self) -> list[str]:
        """The line split as a reader splits it."""
        return self.text.split("|")


@dataclass(frozen=True, slots=True)
class Membership:
    """Which queues each agent is enrolled in: the history's enrolment records and today's.

    Args:
        records: Every ``enrol`` and ``unenrol`` activity kept (any time), in order.
        current: The queues each (tenant, extension number) is enrolled in now.
    """

    records: Sequence[Activity]
    current: Mapping[tuple[int, str], Iterable[int]]

    def queues_at(self, tenant_id: int, extension: str, at: float) -> list[int]:
        """The queues the agent was enrolled in at `at`, by id.

        A queue with a record at or before `at` is the last record's; with records
        only after it, the first one's opposite (an ``unenrol`` says it was in);
        with none, as today (the enrolment predates the history).
        """
        mine = [r for r in self.records if r.tenant_id == tenant_id and r.extension == extension]
        queues = {r.queue_id for r in mine if r.queue_id is not None}
        queues |= set(self.current.get((tenant_id, extension), ()))
        enrolled: list[int] = []
        for queue_id in sorted(queues):
            own = [r for r in mine if r.queue_id == queue_id]
            before = [r for r in own if r.at <= at]
            if before:
                member = before[-1].kind == "enrol"
            elif own:
                member = own[0].kind == "unenrol"
            else:
                member = True
            if member:
                enrolled.append(queue_id)
        return enrolled


def _clean(field: str) -> str:
    # A `|` would shift every field after it; Asterisk replaces it in caller names too.
    return field.replace("|", "_").replace("\n", " ").replace("\r", " ")


def _seconds(start: float, end: float) -> str:
    """Whole seconds between two instants as Asterisk counts them (``time(NULL)`` apart)."""
    return str(int(end) - int(start))


def _line_key(visit: Visit) -> tuple[int, float, int]:
    # The engine's order: highest priority, then the call's arrival, then the order
    # it was queued in (the rows' order).
    return (-visit.priority, visit.arrived_at, visit.id)


def _left_line(visit: Visit) -> float | None:
    """When the call left its queue's line: answered, or gone; None while in it."""
    return visit.answered_at if visit.answered_at is not None else visit.ended_at


def exit_positions(visits: Sequence[Visit]) -> dict[int, int]:
    """Each unanswered visit's place in its queue's line when it left (1 = next), by id.

    A sweep through the visits' entries and exits in time order, keeping each
    queue's line sorted: a caller's place is one more than the callers ahead of it
    that are still in the line at that instant (those that left at the same instant
    are not). O(n log n) in the visits of the window (plus the line's inserts).
    """
    moments: dict[float, tuple[list[Visit], list[Visit]]] = {}
    for visit in visits:
        if visit.position is None:
            continue  # never in a line
        moments.setdefault(visit.entered_at, ([], []))[0].append(visit)
        left = _left_line(visit)
        if left is not None:
            moments.setdefault(left, ([], []))[1].append(visit)
    lines: dict[tuple[int, int | None], list[tuple[int, float, int]]] = {}
    positions: dict[int, int] = {}
    for at in sorted(moments):
        entering, leaving = moments[at]
        for visit in entering:
            insort(lines.setdefault((visit.tenant_id, visit.queue_id), []), _line_key(visit))
        for visit in leaving:
            line = lines[(visit.tenant_id, visit.queue_id)]
            del line[bisect_left(line, _line_key(visit))]
        for visit in leaving:
            if visit.answered_at is None:
                line = lines[(visit.tenant_id, visit.queue_id)]
                positions[visit.id] = bisect_left(line, _line_key(visit)) + 1
    return positions


def _visit_lines(visit: Visit, positions: Mapping[int, int], agent: str) -> list[Line]:
    queue = visit.queue_number or NONE
    call = visit.call_id
    if visit.position is None:
        # Refused on entry (overflowed or rejected): Asterisk's failed joins.
        refused = {"queue_full": "FULL", "queue_empty": "JOINEMPTY"}.get(visit.reason)
        if refused is None or visit.queue_number is None:
            return []
        return [Line(visit.entered_at, call, queue, NONE, refused)]
    origposition = str(visit.position)
    caller = visit.callback_number if visit.callback_number is not None else visit.caller_id
    # ENTERQUEUE(url|callerid): app_queue.c adds the original position after them.
    lines = [Line(visit.entered_at, call, queue, NONE, "ENTERQUEUE", ("", caller, origposition))]
    for ring in visit.rings:
        if ring.outcome in _NOT_ANSWERED and ring.ended_at is not None:
            ms = str(int((ring.ended_at - ring.started_at) * 1000))
            lines.append(
                Line(
                    ring.ended_at,
                    call,
                    queue,
                    agent.format(number=ring.extension),
                    "RINGNOANSWER",
                    (ms,),
                )
            )
    answered = visit.answered_at
    if answered is not None:
        took = next((r for r in visit.rings if r.outcome == "answered"), None)
        member = agent.format(number=took.extension) if took is not None else NONE
        hold = _seconds(visit.entered_at, answered)
        # CONNECT(holdtime|bridgedchanneluniqueid|ringtime): the agent's leg is the ring.
        ring_s = str(int(answered - took.started_at)) if took is not None else "0"
        bridged = took.ring_id if took is not None else ""
        lines.append(Line(answered, call, queue, member, "CONNECT", (hold, bridged, ring_s)))
        if visit.ended_at is not None and visit.outcome == "completed":
            # COMPLETECALLER(holdtime|calltime|origposition): the PBX's hangup does not
            # say who hung up; ringmaster reports the caller's (docs/queue_log.md).
            talk = _seconds(answered, visit.ended_at)
            lines.append(
                Line(
                    visit.ended_at,
                    call,
                    queue,
                    member,
                    "COMPLETECALLER",
                    (hold, talk, origposition),
                )
            )
        return lines
    ended = visit.ended_at
    if ended is None:
        return lines
    exit_event = _exit_event(visit)
    if exit_event is None:
        return lines
    # ABANDON / EXITWITHTIMEOUT / EXITEMPTY / WITHDRAW(position|origposition|waittime)
    data: tuple[str, ...] = (
        str(positions.get(visit.id, visit.position)),
        origposition,
        _seconds(visit.entered_at, ended),
    )
    if exit_event == "EXITWITHKEY":
        data = ("", *data)  # EXITWITHKEY(key|position|origposition|waittime): no key known
    elif exit_event == "WITHDRAW":
        data = (*data, visit.reason)  # WITHDRAW(position|origposition|waittime|info)
    lines.append(Line(ended, call, queue, NONE, exit_event, data))
    return lines


#: An overflow's exit by its reason; any other (`queue_empty`, a queue removed) is
#: EXITEMPTY. A supervisor's move, send or hangup is Asterisk's WITHDRAW (a caller
#: taken out of the queue by AMI's `QueueWithdrawCaller`), the nearest it has.
_OVERFLOW_EXITS = {"max_wait": "EXITWITHTIMEOUT", "supervisor": "WITHDRAW"}


def _exit_event(visit: Visit) -> str | None:
    if visit.outcome == "abandoned":
        return "ABANDON"
    if visit.outcome == "callback":
        return "EXITWITHKEY"
    if visit.outcome == "overflowed":
        return _OVERFLOW_EXITS.get(visit.reason, "EXITEMPTY")
    return None


#: Agent activity -> Asterisk event, and whether the activity's reason is its data.
_MEMBER_EVENTS: Final = {
    "login": "ADDMEMBER",
    "logout": "REMOVEMEMBER",
    "enrol": "ADDMEMBER",
    "unenrol": "REMOVEMEMBER",
    "pause": "PAUSE",
    "unpause": "UNPAUSE",
}


def _activity_lines(
    activity: Activity, membership: Membership, queues: Mapping[int, str], agent: str
) -> list[Line]:
    event = _MEMBER_EVENTS.get(activity.kind)
    if event is None:
        return []
    if activity.queue_id is not None:  # an enrolment: that queue only
        in_queues = [activity.queue_id]
    else:  # a login, logout or pause: every queue the agent is in, as Asterisk's
        in_queues = membership.queues_at(activity.tenant_id, activity.extension, activity.at)
    member = agent.format(number=activity.extension)
    # PAUSE and UNPAUSE carry the reason; ADDMEMBER and REMOVEMEMBER nothing.
    data = (activity.reason,) if event in ("PAUSE", "UNPAUSE") else ()
    return [Line(activity.at, NONE, queues.get(q, str(q)), member, event, data) for q in in_queues]


def render(
    visits: Sequence[Visit],
    activity: Sequence[Activity],
    membership: Membership,
    queues: Mapping[int, str],
    *,
    since: float | None = None,
    until: float | None = None,
    agent_format: str = DEFAULT_AGENT_FORMAT,
) -> list[Line]:
    """The queue_log lines of `visits` and `activity` from `since` (included) to `until`.

    Args:
        visits: The visits with their rings; for a right ``position`` on exit, every
            visit waiting at some time of the window (the store's
            `QueueLogReader` reads those).
        activity: Agent activity, in order (other kinds than a member's are skipped).
        membership: Which queues each agent was in (for a login's or a pause's lines).
        queues: Each queue's number, by id (for a member's lines).
        since: From this instant (included); None: from the first.
        until: Until this instant (excluded); None: to the last.
        agent_format: How an agent is named, with ``{number}`` for its extension.

    Returns:
        The lines in time order, as Asterisk writes them.
    """
    # At one instant: an agent's lines first (in one turn, an agent's change is what
    # the calls' follow), then each visit's in the order the visits were opened (a
    # call leaves a queue before it enters the next), each in the order it happened.
    keyed: list[tuple[float, int, int, int, Line]] = []
    positions = exit_positions(visits)
    for visit in visits:
        for line in _visit_lines(visit, positions, agent_format):
            keyed.append((line.at, 1, visit.id, len(keyed), line))
    for row in activity:
        if row.kind in ("enrol", "unenrol") and row.queue_id is None:
            continue
        for line in _activity_lines(row, membership, queues, agent_format):
            keyed.append((line.at, 0, 0, len(keyed), line))
    keyed.sort(key=lambda k: k[:4])
    return [
        line
        for at, _, _, _, line in keyed
        if (since is None or at >= since) and (until is None or at < until)
    ]
