"""One log format for everything: structlog events and stdlib records alike.

aiomqtt/paho and uvicorn log through the standard library; routing their records
through structlog's ``ProcessorFormatter`` gives them the same timestamp, level and
rendering as the service's own events. Run uvicorn with ``log_config=None`` so that it
keeps this configuration instead of installing its own handlers.
"""

from __future__ import annotations

import logging
import sys
from typing import Any, TextIO

import structlog
from structlog.typing import Processor

__all__ = ["configure_logging"]

_LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
    "critical": logging.CRITICAL,
}


class _Handler(logging.StreamHandler[TextIO]):
    r"""Marks the handler we installed, so reconfiguring replaces it and no other.

    It also writes every line whole whatever text an event carries: a character the
    stream cannot encode (a lone surrogate from a PBX's JSON escape, say) is written
    as its escape, e.g. ``\udfff``, where the standard library would drop the line.
    """

    def format(self, record: logging.LogRecord) -> str:
        """Format the record as text that the stream's encoding can write."""
        text = super().format(record)
        if text.isascii():  # every JSON line (the renderer escapes the rest): no work
            return text
        encoding = getattr(self.stream, "encoding", None) or "utf-8"
        return text.encode(encoding, "backslashreplace").decode(encoding)


def configure_logging(fmt: str, level: str, *, stream: TextIO | None = None) -> None:
    """Configure structlog and the stdlib root logger to write one format to stderr.

    Args:
        fmt: ``json`` for JSON lines, ``console`` for coloured human output, ``auto``
            for JSON unless the stream is a terminal (under systemd it is the journal).
        level: ``debug``, ``info``, ``warning``, ``error`` or ``critical``.
        stream: Where to write; defaults to ``sys.stderr`` at call time.

    Raises:
        ValueError: Unknown format or level.
    """
    if fmt not in ("auto", "json", "console"):
        raise ValueError(f"unknown log format {fmt!r}")
    try:
        numeric_level = _LEVELS[level.lower()]
    except KeyError:
        raise ValueError(f"unknown log level {level!r}") from None
    out = sys.stderr if stream is None else stream
    as_json = fmt == "json" or (fmt == "auto" and not _isatty(out))

    shared: list[Processor] = [
        # Binds made with structlog.contextvars.bind_contextvars (e.g. call_id for the
        # duration of one MQTT message) reach every event, including stdlib ones.
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True, key="timestamp"),
        structlog.processors.StackInfoRenderer(),
    ]
    renderer: Processor
    if as_json:
        # A traceback as structured data keeps one event on one line.
        final: list[Processor] = [structlog.processors.dict_tracebacks]
        renderer = structlog.processors.JSONRenderer()
    else:
        final = []
        renderer = structlog.dev.ConsoleRenderer(colors=_isatty(out))

    structlog.configure(
        processors=[
            # First: an event below the level is dropped before any work is done on
            # it (the decision log is info; at warning it cost 3.4% of the loop).
            structlog.stdlib.filter_by_level,
            *shared,
            structlog.stdlib.PositionalArgumentsFormatter(),
            structlog.processors.UnicodeDecoder(),
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        # Not cached: reconfiguring (tests, a changed level) must reach loggers that
        # modules created at import time.
        cache_logger_on_first_use=False,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[*shared, structlog.stdlib.ExtraAdder()],
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, *final, renderer],
    )
    handler = _Handler(out)
    handler.setFormatter(formatter)

    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, _Handler)]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(numeric_level)


def _isatty(stream: Any) -> bool:
    isatty = getattr(stream, "isatty", None)
    return bool(isatty()) if callable(isatty) else False
