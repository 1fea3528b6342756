import io
import json
import logging
from collections.abc import Iterator

import pytest
import structlog

from ringmaster.daemon.decision_log import log_decisions
from ringmaster.engine import commands as cmd
from ringmaster.engine import events as ev
from ringmaster.engine.commands import Command
from ringmaster.engine.model import CallId, QueueId, TenantId
from ringmaster.logs import configure_logging


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    structlog.reset_defaults()
    structlog.contextvars.clear_contextvars()


def _lines(stream: io.StringIO) -> list[str]:
    return stream.getvalue().splitlines()


def test_json_lines_for_structlog_and_stdlib() -> None:
    out = io.StringIO()
    configure_logging("json", "info", stream=out)
    structlog.contextvars.bind_contextvars(call_id="c-1")
    structlog.get_logger("ringmaster.service").info("ring_sent", extension="101")
    logging.getLogger("mqtt").warning("connection lost: %s", "timeout")

    own, foreign = (json.loads(line) for line in _lines(out))
    assert own["event"] == "ring_sent"
    assert own["extension"] == "101"
    assert own["level"] == "info"
    assert own["call_id"] == "c-1"
    assert own["timestamp"].endswith("Z")
    assert foreign["event"] == "connection lost: timeout"
    assert foreign["level"] == "warning"
    assert foreign["logger"] == "mqtt"
    assert foreign["call_id"] == "c-1"
    assert set(foreign) >= {"timestamp", "level", "event"}


def test_level_filters_both() -> None:
    out = io.StringIO()
    configure_logging("json", "warning", stream=out)
    structlog.get_logger().info("hidden")
    logging.getLogger("uvicorn").info("hidden too")
    structlog.get_logger().error("shown")
    assert [json.loads(line)["event"] for line in _lines(out)] == ["shown"]


def test_auto_is_json_when_not_a_tty_and_reconfiguring_replaces_the_handler() -> None:
    first, second = io.StringIO(), io.StringIO()
    configure_logging("console", "info", stream=first)
    configure_logging("auto", "info", stream=second)
    logging.getLogger("x").info("once")
    assert first.getvalue() == ""
    assert json.loads(second.getvalue())["event"] == "once"


def test_console_format_is_not_json() -> None:
    out = io.StringIO()
    configure_logging("console", "debug", stream=out)
    structlog.get_logger().debug("hello", queue_id=3)
    text = out.getvalue()
    assert "hello" in text
    assert "queue_id=3" in text
    with pytest.raises(json.JSONDecodeError):
        json.loads(text)


def test_exception_is_one_json_line() -> None:
    out = io.StringIO()
    configure_logging("json", "info", stream=out)
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        logging.getLogger("x").exception("failed")
    (line,) = _lines(out)
    assert json.loads(line)["exception"][0]["exc_type"] == "RuntimeError"


@pytest.mark.parametrize(("fmt", "level"), [("xml", "info"), ("json", "loud")])
def test_rejects_unknown_values(fmt: str, level: str) -> None:
    with pytest.raises(ValueError, match="unknown"):
        configure_logging(fmt, level)


@pytest.mark.parametrize("fmt", ["json", "console"])
@pytest.mark.parametrize("encoding", ["utf-8", "ascii"])
def test_odd_text_never_costs_a_line(
    fmt: str, encoding: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # A lone surrogate (a PBX's JSON escape \udfff), NUL, a newline and text the stream
    # cannot encode, in values, keys, the event name and an exception.
    raw = io.BytesIO()
    out = io.TextIOWrapper(raw, encoding=encoding, errors="strict", write_through=True)
    configure_logging(fmt, "info", stream=out)
    log = structlog.get_logger("ringmaster.service")
    odd = "Zo\u00eb fz\udfffp2 \x00\n\x1b[31m"
    log.warning(f"inbound.rejected {odd}", topic=odd, **{f"key {odd}": 1})
    try:
        raise ValueError(odd)
    except ValueError:
        log.exception("inbound.failed", topic=odd)
    logging.getLogger("mqtt").warning("stdlib %s", odd)

    text = raw.getvalue().decode(encoding)
    for event in ("inbound.rejected", "inbound.failed", "stdlib"):
        assert event in text
    assert "udfff" in text
    assert "Logging error" not in capsys.readouterr().err


def _decisions() -> list[Command]:
    tenant, queue = TenantId(1), QueueId(7)
    ring = cmd.Ring(tenant, CallId("c-1"), "101", queue, 20, "+4930123", "r1")
    hangup = ev.CallHungUp(tenant, CallId("c-2"), "normal")
    refused = cmd.RejectInput(hangup, "no such call", 1.0)
    snapshot = cmd.ClearQueueSnapshot(tenant, queue)  # not worth a line at any level
    return [ring, refused, snapshot]


def test_decisions_are_logged_with_their_fields_at_info() -> None:
    out = io.StringIO()
    configure_logging("json", "info", stream=out)
    log_decisions(_decisions())
    ring, refused = (json.loads(line) for line in _lines(out))
    assert ring["event"] == "ring"
    assert ring["level"] == "info"
    assert {k: ring[k] for k in ("tenant", "call_id", "extension", "queue_id", "ring_id")} == {
        "tenant": 1,
        "call_id": "c-1",
        "extension": "101",
        "queue_id": 7,
        "ring_id": "r1",
    }
    assert "at" not in ring
    assert (refused["event"], refused["level"]) == ("inbound.refused", "warning")
    assert (refused["tenant"], refused["error"]) == (1, "no such call")


def test_only_refusals_are_logged_at_warning() -> None:
    out = io.StringIO()
    configure_logging("json", "warning", stream=out)
    log_decisions(_decisions())
    assert [json.loads(line)["event"] for line in _lines(out)] == ["inbound.refused"]
