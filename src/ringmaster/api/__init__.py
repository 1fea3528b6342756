"""The HTTP admin API, served by the daemon itself (see `ringmaster.api.app`)."""

from ringmaster.api.app import ApiServer, create_app
from ringmaster.api.auth import check_exposure

__all__ = ["ApiServer", "check_exposure", "create_app"]
