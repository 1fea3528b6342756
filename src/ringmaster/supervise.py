"""`ringmaster agent` and `ringmaster call`: a supervisor's controls from the terminal.

What Asterisk's ``queue pause member`` and FreeSWITCH's ``callcenter_config agent
set status`` do, through the running daemon's admin API (`ringmaster.client`):

- ``ringmaster agent pause|unpause|logout EXTENSION --tenant N [--reason R]`` asks
  the PBX to change the agent's presence (``P/T/cmd/agent_state``); the agent shows
  paused once the PBX confirms, as the line printed says.
- ``ringmaster call move|priority|send|hangup CALL_ID --tenant N ...`` acts on a
  call that waits (queued or ringing): another queue of the tenant (by its number,
  as ``report --queue``), a new priority, an extension, or a hangup.
"""

from __future__ import annotations

import argparse
import sys
import urllib.parse
from typing import Any

from ringmaster.client import ApiClient, ApiError, api_address

#: The presence each ``agent`` action asks the PBX for.
PRESENCE = {"pause": "paused", "unpause": "available", "logout": "logged_out"}
#: Each ``call`` action, and what its value is (None: it takes none).
CALL_ACTIONS = {
    "move": "the number of the queue to move it to",
    "priority": "the priority, 0 to 9",
    "send": "the extension number to send it to",
    "hangup": None,
}


def run(args: argparse.Namespace) -> int:
    """Run ``ringmaster agent ...`` or ``ringmaster call ...``; returns the exit status."""
    try:
        url, token = api_address(args)
        api = ApiClient(url, token)
        if args.command == "agent":
            line = agent(api, args.tenant, args.extension, args.action, args.reason)
        else:
            line = call(api, args.tenant, args.call_id, args.action, args.value)
    except ApiError as error:
        print(f"ringmaster {args.command} {args.action}: {error}", file=sys.stderr)
        return 1
    print(line)
    return 0


def agent(api: ApiClient, tenant_id: int, extension: str, action: str, reason: str | None) -> str:
    """Ask the PBX to pause, unpause or log out `extension`; the line to print.

    Raises:
        ApiError: The API refused (say, no such agent in the tenant).
    """
    body: dict[str, Any] = {"state": PRESENCE[action]}
    if reason:
        body["reason"] = reason
    answer = api.post_json(f"/api/agents/{tenant_id}/{_part(extension)}/presence", body)
    because = f" ({answer['reason']})" if answer.get("reason") else ""
    return (
        f"asked the PBX to set agent {extension} {answer['requested']}{because};"
        f" it is {answer['state']} until the PBX confirms"
    )


def call(api: ApiClient, tenant_id: int, call_id: str, action: str, value: str | None) -> str:
    """Move, reprioritise, send or hang up a waiting call; the line to print.

    Args:
        api: The daemon's API.
        tenant_id: The call's tenant.
        call_id: The call, as the PBX named it.
        action: ``move``, ``priority``, ``send`` or ``hangup``.
        value: The queue's number, the priority, or the extension; None for ``hangup``.

    Raises:
        ApiError: The API refused (no such waiting call, a bad target, ...).
    """
    wanted = CALL_ACTIONS[action]
    if (value is None) != (wanted is None):
        raise ApiError(f"give {wanted}" if wanted else f"{action} takes no value, got {value!r}")
    path = f"/api/calls/{tenant_id}/{_part(call_id)}/{action}"
    if action == "move":
        assert value is not None
        queue = queue_by_number(api, tenant_id, value)
        api.post_json(path, {"queue_id": queue["id"]})
        return f"call {call_id} moved to queue {queue['queue_number']} {queue['name']}"
    if action == "priority":
        assert value is not None
        api.post_json(path, {"priority": _priority(value)})
        return f"call {call_id} now has priority {value}"
    if action == "send":
        assert value is not None
        api.post_json(path, {"extension": value})
        return f"call {call_id} sent to extension {value}"
    api.post_json(path, {})
    return f"call {call_id} hung up"


def queue_by_number(api: ApiClient, tenant_id: int, number: str) -> dict[str, Any]:
    """The tenant's queue numbered `number`, as ``GET /api/queues`` reads it.

    Raises:
        ApiError: The tenant has no queue of that number.
    """
    page = api.get_json(f"/api/queues?tenant_id={tenant_id}&limit=1000")
    for queue in page["items"]:
        if queue["queue_number"] == number:
            return dict(queue)
    raise ApiError(f"tenant {tenant_id} has no queue numbered {number!r}")


def _priority(value: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise ApiError(f"priority: {value!r} is not a whole number from 0 to 9") from None


def _part(text: str) -> str:
    """`text` as one segment of a URL's path: a call id may hold ``/`` or ``?``."""
    return urllib.parse.quote(text, safe="")
