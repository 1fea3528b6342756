"""The log lines of the engine's decisions, as the daemon writes them once stored."""

from __future__ import annotations

import dataclasses
import enum
import logging
from collections.abc import Iterable

import structlog

from ringmaster.engine import commands as cmd

# The daemon's log, whichever of its modules writes a line.
_log = structlog.get_logger("ringmaster.service")
# The standard library's logger under it: its level is the one structlog's
# `filter_by_level` drops lines below (see `ringmaster.logs`).
_stdlib_log = logging.getLogger("ringmaster.service")

#: The decisions worth a log line, by the name they are logged under. Agent
#: states and snapshots are visible on MQTT and too chatty for the log.
LOGGED: dict[type, str] = {
    cmd.Ring: "ring",
    cmd.CancelRing: "cancel_ring",
    cmd.RouteToExtension: "route",
    cmd.RouteToHangup: "route_hangup",
    cmd.PublishCallQueued: "call.queued",
    cmd.PublishCallAnswered: "call.answered",
    cmd.PublishCallAbandoned: "call.abandoned",
    cmd.PublishCallCompleted: "call.completed",
    cmd.PublishCallRejected: "call.rejected",
    cmd.PublishCallOverflowed: "call.overflowed",
    cmd.PublishCallbackRequested: "call.callback_requested",
    cmd.Originate: "originate",
    cmd.SetAgentState: "agent_state",
}


def log_decisions(commands: Iterable[cmd.Command]) -> None:
    """Log a turn's decisions (`log_decision` of each).

    Below info (the level a busy daemon runs at) only refusals are written: the
    other decisions' fields are then not gathered at all. At warning that work,
    dropped line after line, cost 3.6% of the loop.
    """
    if _stdlib_log.isEnabledFor(logging.INFO):
        for command in commands:
            log_decision(command)
        return
    for command in commands:
        if isinstance(command, cmd.RejectInput):
            log_decision(command)


def log_decision(command: cmd.Command) -> None:
    """Log one of the engine's decisions, with every field, if it is worth a line."""
    if isinstance(command, cmd.RejectInput):
        _log.warning("inbound.refused", tenant=command.event.tenant_id, error=command.error)
        return
    name = LOGGED.get(type(command))
    if name is not None:
        # Every field, so each line has the call_id, tenant, queue and extension.
        fields = {f.name: getattr(command, f.name) for f in dataclasses.fields(command)}
        fields["tenant"] = fields.pop("tenant_id")
        fields.pop("at", None)
        _log.info(
            name, **{k: v.value if isinstance(v, enum.Enum) else v for k, v in fields.items()}
        )
