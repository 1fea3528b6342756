"""`ringmaster report`: its table of the real API's answers, and its one-line errors."""

from __future__ import annotations

from datetime import date
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest

from ringmaster.cli import main
from ringmaster.daemon.broker import free_port
from ringmaster.report import day_range, render
from ringmaster.store import Store

from .test_reports import seed_history

NEW_YORK = ZoneInfo("America/New_York")


def test_a_day_is_the_local_calendar_day() -> None:
    assert day_range(date(2026, 11, 1), NEW_YORK) == (
        "2026-11-01T00:00:00-04:00",
        "2026-11-02T00:00:00-05:00",
    )
    assert day_range(date(2026, 7, 1), ZoneInfo("UTC")) == (
        "2026-07-01T00:00:00+00:00",
        "2026-07-02T00:00:00+00:00",
    )


async def report_of(client: httpx.AsyncClient, day: date) -> tuple[Any, Any]:
    since, until = day_range(day, NEW_YORK)
    answers = []
    for interval in ("1h", "1d"):
        params: dict[str, Any] = {"tenant_id": 1, "from": since, "to": until}
        params["interval"] = interval
        answers.append((await client.get("/api/reports/queues", params=params)).json())
    return answers[0], answers[1]


async def test_the_table_of_a_day_the_clocks_go_back(
    store: Store, client: httpx.AsyncClient
) -> None:
    seed_history(store)
    hours, day = await report_of(client, date(2026, 11, 1))
    text = render(hours, day)
    lines = text.splitlines()
    assert lines[0] == (
        "600 Sales (queue 1), 2026-11-01 (America/New_York),"
        " SL threshold: the queue's; short abandon: 5 s"
    )
    # title, headings, the two hours with calls of the day's 25 (one of them the
    # repeated 01:00, told apart by its offset), the day
    assert len(lines) == 2 + 2 + 1
    assert lines[1].split() == [
        "HOUR", "OFFERED", "ANSWERED", "ABANDONED", "SHORT", "OVERFLOWED", "REJECTED", "SL%",
        "SL", "ALL%", "ASA", "AHT", "AVG", "WAIT", "MAX", "WAIT", "P90", "WAIT",
    ]  # fmt: skip
    assert lines[2].split() == [
        "00:00-04:00", "1", "1", "0", "0", "0", "0", "100.0", "100.0", "0:10", "1:40",
        "0:10", "0:10", "0:10",
    ]  # fmt: skip
    assert lines[3].split() == [
        "01:00-05:00", "2", "1", "1", "1", "0", "0", "0.0", "0.0", "0:25", "1:40", "0:13",
        "0:25", "0:25",
    ]  # fmt: skip
    assert lines[-1].split() == [
        "DAY", "3", "2", "1", "1", "0", "0", "50.0", "50.0", "0:17", "1:40", "0:12", "0:25",
        "0:25",
    ]  # fmt: skip
    assert render(hours, day, "700") == "2026-11-01 (America/New_York): no calls in queue 700\n"


async def test_a_day_without_calls_says_so(store: Store, client: httpx.AsyncClient) -> None:
    hours, day = await report_of(client, date(2026, 7, 1))  # tenant 1 in UTC: no history
    assert render(hours, day) == "2026-07-01 (UTC): no calls\n"


def test_no_daemon_is_one_clear_line_and_exit_1(capsys: pytest.CaptureFixture[str]) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    assert main(["report", "--tenant", "1", "--api", url]) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert err.count("\n") == 1
    assert err.startswith(f"ringmaster report: no daemon answered at {url} (connection refused)")


def test_a_bad_day_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["report", "--tenant", "1", "--day", "yesterday"])
    assert exited.value.code == 2
    assert "--day" in capsys.readouterr().err
