"""The HTTP admin API, served by the daemon itself (see `ringmaster.api.app`).

`ApiServer` and `create_app` are imported on first use: FastAPI's import is most
of the daemon's start-up, and a restarted daemon serves calls before its API.
"""

from typing import TYPE_CHECKING, Any

from ringmaster.api.exposure import check_exposure

if TYPE_CHECKING:
    from ringmaster.api.app import ApiServer, create_app

__all__ = ["ApiServer", "check_exposure", "create_app"]


def __getattr__(name: str) -> Any:
    # PEP 562: the FastAPI side, on first use.
    if name in ("ApiServer", "create_app"):
        from ringmaster.api import app  # noqa: PLC0415 - the point of this function

        return getattr(app, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
