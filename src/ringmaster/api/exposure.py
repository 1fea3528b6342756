"""Where the admin API may listen: checked before the daemon starts anything.

Apart from `ringmaster.api.auth` (which needs FastAPI) so that the daemon can
check its settings first and import the API only once calls are being served:
FastAPI's import is most of a restart's import time.
"""

from __future__ import annotations

import ipaddress

from ringmaster.settings import ApiSettings, SettingsError


def is_loopback(host: str) -> bool:
    """Whether `host` (an IP address or ``localhost``) only accepts local connections."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to anything


def check_exposure(settings: ApiSettings) -> None:
    """Refuse an API open to the network without tokens.

    Raises:
        SettingsError: `api.host` is not a loopback address and no token is set.
    """
    if settings.has_tokens() or is_loopback(settings.host):
        return
    raise SettingsError(
        f"api.host: {settings.host!r} is not a loopback address and no API token is"
        " configured (environment variable RINGMASTER_API__HOST); set"
        " api.admin_tokens / api.tenant_tokens / api.tokens_file"
        " (RINGMASTER_API__ADMIN_TOKENS, RINGMASTER_API__TENANT_TOKENS,"
        " RINGMASTER_API__TOKENS_FILE), or set api.host to 127.0.0.1"
    )
