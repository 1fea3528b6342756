"""systemd's notify protocol (sd_notify(3)) without a dependency.

The service sends ``READY=1`` once it serves, ``WATCHDOG=1`` every
:func:`watchdog_period` seconds, and ``STOPPING=1`` when it shuts down.
"""

from __future__ import annotations

import os
import socket

__all__ = ["notify", "watchdog_period"]


def notify(message: str) -> bool:
    """Send ``message`` (e.g. ``"READY=1"``) to the service manager.

    Args:
        message: Newline-separated ``KEY=value`` assignments.

    Returns:
        True when sent; False when not run by systemd (no ``$NOTIFY_SOCKET``) or when
        the send failed. A monitoring message must never take the service down.
    """
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return False
    if address.startswith("@"):
        # sd_notify(3): a leading '@' names a socket in the abstract namespace,
        # which Linux spells with a leading NUL byte.
        address = "\0" + address[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.connect(address)
            sock.sendall(message.encode("utf-8"))
    except OSError:
        return False
    return True


def watchdog_period() -> float | None:
    """How often to send ``WATCHDOG=1``, in seconds, or None when no watchdog is armed.

    Half of ``$WATCHDOG_USEC``, as sd_watchdog_enabled(3) recommends, so that one late
    ping does not get the service killed. ``$WATCHDOG_PID``, when set, must be ours:
    the variables may have been inherited from a parent that systemd watches.
    """
    usec = os.environ.get("WATCHDOG_USEC")
    if not usec:
        return None
    pid = os.environ.get("WATCHDOG_PID")
    if pid:
        try:
            if int(pid) != os.getpid():
                return None
        except ValueError:
            return None
    try:
        timeout_us = int(usec)
    except ValueError:
        return None
    if timeout_us <= 0:
        return None
    return timeout_us / 1_000_000 / 2
