"""The daemon's admin API over HTTP, for the commands that talk to a running daemon.

`ringmaster status`, `report` and `provision` reach the daemon with the standard
library's HTTP (nothing of the daemon's own imports: a command answers at once).
Every failure is one `ApiError` whose message is the one line to print; a
`NoDaemonError` says that nothing listens at the address (the daemon is not running),
which `ringmaster provision` answers by writing the database file itself.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import os
import urllib.error
import urllib.request
from http import HTTPStatus
from pathlib import Path
from typing import Any

#: Where `--token` is read from when not given: a token on the command line is
#: visible to every user of the host in the process list.
TOKEN_VARIABLE = "RINGMASTER_API_TOKEN"
#: The longest any one request may take.
TIMEOUT_S = 10.0


class ApiError(Exception):
    """The daemon's API could not be used; the message is the one line to print.

    Attributes:
        status: The HTTP status the API answered; None when it did not answer.
        errors: The API's error lines (a 422's field errors, one each); empty otherwise.
    """

    def __init__(
        self, message: str, status: int | None = None, errors: tuple[str, ...] = ()
    ) -> None:
        super().__init__(message)
        self.status = status
        self.errors = errors


class NoDaemonError(ApiError):
    """Nothing listens at the API's address (connection refused): the daemon is not running."""


def api_address(args: argparse.Namespace) -> tuple[str, str | None]:
    """Where a command reaches the API, and its token.

    ``--api``, else the settings' address; ``--token``, else `TOKEN_VARIABLE`.

    Raises:
        ApiError: ``--api`` is not given and a setting is bad.
    """
    url = args.api if args.api is not None else settings_url(args.config)
    token = args.token if args.token is not None else os.environ.get(TOKEN_VARIABLE)
    return url, token


def settings_url(config: Path | None) -> str:
    """The API's URL from the settings (`config`, or the default file and environment).

    Raises:
        ApiError: A setting is bad.
    """
    from ringmaster.settings import SettingsError, load_settings  # noqa: PLC0415

    try:
        settings = load_settings(config)
    except SettingsError as error:
        raise ApiError(f"bad setting: {error} (or give --api URL)") from None
    return api_url(settings.api.host, settings.api.port)


def api_url(host: str, port: int) -> str:
    """The URL to reach an API listening on `host`: a wildcard address is reached on loopback."""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return f"http://{host}:{port}"
    v6 = isinstance(address, ipaddress.IPv6Address)
    if address.is_unspecified:
        address = ipaddress.ip_address("::1" if v6 else "127.0.0.1")
    shown = f"[{address}]" if v6 else str(address)
    return f"http://{shown}:{port}"


class ApiClient:
    """The daemon's admin API at `base_url`: JSON and text requests, each failure an `ApiError`.

    Args:
        base_url: Where the API listens (``http://127.0.0.1:8080``).
        token: The bearer token, if any.
        timeout: The longest one request may take, in seconds.
    """

    def __init__(self, base_url: str, token: str | None, timeout: float = TIMEOUT_S) -> None:
        self.url = base_url.rstrip("/")
        self._timeout = timeout
        self._headers = {"Accept": "application/json"}
        if token:
            self._headers["Authorization"] = f"Bearer {token}"

    def get_json(self, path: str) -> Any:
        """The JSON answer to ``GET path``."""
        return self._request("GET", path)

    def post_json(self, path: str, body: Any) -> Any:
        """The JSON answer to ``POST path`` with `body` as JSON."""
        return self._request("POST", path, json.dumps(body).encode(), "application/json")

    def post_text(self, path: str, text: str, content_type: str = "text/plain") -> Any:
        """The JSON answer to ``POST path`` with `text` (UTF-8) as the body."""
        return self._request("POST", path, text.encode(), f"{content_type}; charset=utf-8")

    def _request(
        self, method: str, path: str, body: bytes | None = None, content_type: str | None = None
    ) -> Any:
        headers = dict(self._headers)
        if content_type is not None:
            headers["Content-Type"] = content_type
        request = urllib.request.Request(self.url + path, data=body, headers=headers, method=method)
        try:
            with urllib.request.urlopen(request, timeout=self._timeout) as response:
                answer = response.read()
        except urllib.error.HTTPError as error:
            raise self._refused(error) from None
        except (urllib.error.URLError, OSError) as error:
            reason = getattr(error, "reason", error)
            if isinstance(reason, ConnectionRefusedError):
                raise NoDaemonError(
                    f"no daemon answered at {self.url} (connection refused): is the daemon running?"
                ) from None
            raise ApiError(
                f"cannot reach the daemon's API at {self.url} ({reason}): is the daemon running?"
            ) from None
        try:
            return json.loads(answer)
        except ValueError:
            raise ApiError(
                f"{self.url}{path} did not answer JSON: is it Ringmaster's API?"
            ) from None

    def _refused(self, error: urllib.error.HTTPError) -> ApiError:
        try:
            detail: Any = json.loads(error.read())["detail"]
        except (ValueError, KeyError, TypeError):
            detail = error.reason
        errors = _error_lines(detail)
        if error.code == HTTPStatus.UNAUTHORIZED:
            message = (
                f"{self.url} refused the token (401: {detail});"
                f" give one with --token or ${TOKEN_VARIABLE}"
            )
        elif errors:
            message = f"{self.url} answered {error.code}: " + "; ".join(errors)
        else:
            message = f"{self.url} answered {error.code}: {detail}"
        return ApiError(message, error.code, errors)


def _error_lines(detail: Any) -> tuple[str, ...]:
    """A 422's field errors (FastAPI's ``[{"loc", "msg"}, ...]``, or plain lines), one each."""
    if not isinstance(detail, list):
        return ()
    lines = []
    for item in detail:
        if isinstance(item, dict) and "msg" in item:
            where = ".".join(str(part) for part in item.get("loc", ()) if part != "body")
            lines.append(f"{where}: {item['msg']}" if where else str(item["msg"]))
        else:
            lines.append(str(item))
    return tuple(lines)
