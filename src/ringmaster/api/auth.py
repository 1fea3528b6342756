"""Who is calling: bearer tokens from the settings, and where the API may listen.

An admin token sees every tenant; a tenant token sees its own tenant only, and
everything of another tenant looks as if it did not exist (404, never 403, so a
token cannot probe for other tenants' ids). With no token configured at all,
every request on a loopback address is an admin's; off loopback, `check_exposure`
refuses to start such a daemon, and the authenticator answers 401 all the same.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass, field
from typing import Annotated

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from ringmaster.api.exposure import check_exposure, is_loopback
from ringmaster.engine.model import TenantId
from ringmaster.settings import ApiSettings

__all__ = ["Authenticator", "Principal", "check_exposure", "is_loopback"]


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


class Authenticator:
    """Maps a bearer token to a `Principal`, comparing SHA-256 hashes in constant time.

    Args:
        settings: The API settings holding the tokens.
    """

    def __init__(self, settings: ApiSettings) -> None:
        self._loopback = is_loopback(settings.host)
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


def authenticate(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    """FastAPI dependency: the calling `Principal`, or a 401.

    Raises:
        HTTPException: 401 for a missing or unknown token. The token is never logged
            nor echoed.
    """
    authenticator: Authenticator = request.app.state.authenticator
    if authenticator.open:
        return ADMIN
    principal = None if credentials is None else authenticator.principal(credentials.credentials)
    if principal is None:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "a valid bearer token is required (Authorization: Bearer <token>)",
            headers={"WWW-Authenticate": "Bearer"},
        )
    return principal


Caller = Annotated[Principal, Depends(authenticate)]
