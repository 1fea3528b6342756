"""Who is calling: bearer tokens from the settings, and where the API may listen.

An admin token sees every tenant; a tenant token sees its own tenant only, and
everything of another tenant looks as if it did not exist (404, never 403, so a
token cannot probe for other tenants' ids). With no token configured at all,
every request on a loopback address is an admin's; off loopback, `check_exposure`
refuses to start such a daemon, and the authenticator answers 401 all the same.
A client address that fails too often gets 429 until its count refills
(`FailureLimiter`), without its token being compared.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import math
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Annotated

import structlog
from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from ringmaster.api.exposure import check_exposure, is_loopback
from ringmaster.engine.model import TenantId
from ringmaster.settings import ApiSettings

__all__ = [
    "Authenticator",
    "FailureLimiter",
    "Principal",
    "check_exposure",
    "client_key",
    "is_loopback",
]

_log = structlog.get_logger("ringmaster.api")


@dataclass(frozen=True, slots=True)
class Principal:
    """The caller: an admin (`tenant_id` None) or one tenant's operator.

    `name` says which token it came with, for logs and audit records, never the
    token itself: the token's configured name (`{name = "wallboard", token = ...}`),
    else its place: `admin#2` is the second admin token, `tenant-7#1` tenant 7's
    first (settings before `api.tokens_file`); `local` a caller of an API on
    loopback without tokens.
    """

    tenant_id: TenantId | None
    name: str = field(default="local", compare=False)

    @property
    def is_admin(self) -> bool:
        """True for an admin token (or an API with no tokens configured)."""
        return self.tenant_id is None

    def sees(self, tenant_id: int) -> bool:
        """Whether this caller may see and change `tenant_id`'s resources."""
        return self.tenant_id is None or self.tenant_id == tenant_id


ADMIN = Principal(None, "local")

#: Client addresses whose failures are remembered at once: past it, the least
#: recently failed is forgotten, so that many addresses cannot exhaust memory.
MAX_TRACKED_ADDRESSES = 10_000
_IPV6_HOLDER_PREFIX = 64


def client_key(host: str) -> str:
    """The holder of a client address, as failures are counted: an IPv6 address's /64.

    One IPv6 client usually holds a whole /64 and could fail from a new address
    each time; an IPv4-mapped IPv6 address is its IPv4 address. Anything else (not
    an IP address) is taken as it is.
    """
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return host
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, _IPV6_HOLDER_PREFIX), strict=False))
    return str(address)


class FailureLimiter:
    """Failed authentications per client, as token buckets on a monotonic clock.

    Each client may fail `per_minute` times at once, and one more every
    60/`per_minute` seconds. A client whose bucket is full again is forgotten.

    Args:
        per_minute: The bucket's size and its refill per minute.
        clock: Monotonic time in seconds.
        max_addresses: The most clients remembered at once.
    """

    def __init__(
        self,
        per_minute: int,
        *,
        clock: Callable[[], float] = time.monotonic,
        max_addresses: int = MAX_TRACKED_ADDRESSES,
    ) -> None:
        self._size = float(per_minute)
        self._per_second = per_minute / 60.0
        self._clock = clock
        self._max = max_addresses
        # client -> (failures still allowed, when counted), least recently failed first
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()

    @property
    def tracked(self) -> int:
        """How many clients are remembered (those whose bucket is not full)."""
        return len(self._buckets)

    def _allowed(self, client: str, now: float) -> float:
        bucket = self._buckets.get(client)
        if bucket is None:
            return self._size
        left, at = bucket
        return min(self._size, left + (now - at) * self._per_second)

    def retry_after(self, client: str) -> float | None:
        """Seconds until `client` may try a token again, or None when it may now."""
        now = self._clock()
        left = self._allowed(client, now)
        if left >= self._size:
            self._buckets.pop(client, None)
            return None
        if left >= 1:
            return None
        return (1 - left) / self._per_second

    def failed(self, client: str) -> None:
        """Count one failed authentication of `client`."""
        now = self._clock()
        left = max(0.0, self._allowed(client, now) - 1)
        self._buckets[client] = (left, now)
        self._buckets.move_to_end(client)
        if len(self._buckets) > self._max:
            self._buckets.popitem(last=False)
        if left < 1:
            _log.warning("api.auth_failures_limited", client=client)


class Authenticator:
    """Maps a bearer token to a `Principal`, comparing SHA-256 hashes in constant time.

    Args:
        settings: The API settings holding the tokens and the failure limit.
        clock: Monotonic time in seconds, for the failure limit.
    """

    def __init__(
        self, settings: ApiSettings, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._loopback = is_loopback(settings.host)
        self.limiter = FailureLimiter(settings.auth_failures_per_minute, clock=clock)
        """Failed authentications per client address."""
        # Every token is compared as its SHA-256, whether given in clear or hashed:
        # same length every time, and the settings need never hold one in clear.
        self._tokens: list[tuple[bytes, Principal]] = []
        places: dict[int | None, int] = {}
        for tenant_id, token in settings.all_tokens():
            places[tenant_id] = place = places.get(tenant_id, 0) + 1
            name = token.name or (
                f"admin#{place}" if tenant_id is None else f"tenant-{tenant_id}#{place}"
            )
            tenant = None if tenant_id is None else TenantId(tenant_id)
            self._tokens.append((token.digest(), Principal(tenant, name)))

    @property
    def open(self) -> bool:
        """True when no token is configured on a loopback address: every caller is an admin.

        Off loopback the API is never open, whatever the settings look like (a tenant
        listed with no tokens, say): without a valid token a request gets a 401.
        """
        return not self._tokens and self._loopback

    def principal(self, token: str) -> Principal | None:
        """The caller holding `token`, or None for an unknown (or blank) token."""
        if not token.strip():
            return None  # no configured token is blank; say so without comparing
        given = hashlib.sha256(token.encode(errors="surrogatepass")).digest()
        found: Principal | None = None
        # Compare against every token, without stopping at a match, so that the time
        # taken says nothing about which token matched.
        for candidate, principal in self._tokens:
            if hmac.compare_digest(given, candidate) and found is None:
                found = principal
        return found


_bearer = HTTPBearer(auto_error=False, description="An admin or a tenant token.")


async def authenticate(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    """FastAPI dependency: the calling `Principal`, or a 401 (429 past the failure limit).

    Async, though it awaits nothing: it then runs in the event loop, one request at
    a time, not on a worker thread beside another request's failure count.

    Raises:
        HTTPException: 401 for a missing or unknown token; 429 with Retry-After for
            a client address past `api.auth_failures_per_minute`, whose token is then
            not even compared. The token is never logged nor echoed.
    """
    authenticator: Authenticator = request.app.state.authenticator
    if authenticator.open:
        return ADMIN
    client = client_key(request.client.host if request.client is not None else "unknown")
    wait = authenticator.limiter.retry_after(client)
    if wait is not None:
        seconds = math.ceil(wait)
        raise HTTPException(
            status.HTTP_429_TOO_MANY_REQUESTS,
            f"too many failed authentications from this address; retry in {seconds} s",
            headers={"Retry-After": str(seconds)},
        )
    principal = None if credentials is None else authenticator.principal(credentials.credentials)
    if principal is None:
        authenticator.limiter.failed(client)
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "a valid bearer token is required (Authorization: Bearer <token>)",
            headers={"WWW-Authenticate": "Bearer"},
        )
    return principal


Caller = Annotated[Principal, Depends(authenticate)]
