"""The scenario tests' golden streams: every command each test's `Sim`s were given.

Each engine test that builds a `Sim` leaves a stream: for each Sim, in the
order built, every command with the virtual time it came at. The stream is
compared with the one recorded in `golden/scenarios.json.gz` for the same
test, so that a change of behaviour shows even where a test's assertions look
at only part of what the engine said. A test with no record is not compared
(a new test: record it). Hypothesis-driven tests are left out: their examples
are not fixed (the golden corpus, `test_golden`, covers them); so is the
golden corpus itself, which keeps its own streams.

To record (for the tests that run; the others keep theirs):

    RINGMASTER_GOLDEN_RECORD=1 python -m pytest tests/engine
"""

from __future__ import annotations

import gzip
import json
import os
from collections.abc import Iterator
from itertools import zip_longest
from pathlib import Path

import pytest

from . import sim

SCENARIOS = Path(__file__).parent / "golden" / "scenarios.json.gz"
RECORDING = os.environ.get("RINGMASTER_GOLDEN_RECORD") == "1"

_recorded: dict[str, list[str]] | None = None
_new: dict[str, list[str]] = {}


def recorded() -> dict[str, list[str]]:
    global _recorded  # noqa: PLW0603 - read once per session
    if _recorded is None:
        if SCENARIOS.exists():
            with gzip.open(SCENARIOS, "rt", encoding="utf-8") as f:
                _recorded = json.load(f)
        else:
            _recorded = {}
    return _recorded


def stream(sims: list[sim.Sim]) -> list[str]:
    lines: list[str] = []
    for number, built in enumerate(sims):
        lines.append(f"sim {number}")
        lines += [f"{at!r} {command!r}" for at, command in built.timed]
    return lines


def first_difference(expected: list[str], actual: list[str]) -> str:
    for i, (want, got) in enumerate(zip_longest(expected, actual)):
        if want != got:
            return f"line {i}:\n  expected {want}\n  actual   {got}"
    return "no difference"


@pytest.fixture(autouse=True)
def golden_stream(request: pytest.FixtureRequest) -> Iterator[None]:
    """Compare (or record) the commands this test's Sims were given."""
    built: list[sim.Sim] = []
    sim.BUILT = built
    try:
        yield
    finally:
        sim.BUILT = None
    if not built or getattr(request.function, "is_hypothesis_test", False):
        return
    if request.path.name == "test_golden.py":
        return  # the golden corpus keeps its own streams
    node = request.node.nodeid
    actual = stream(built)
    if RECORDING:
        _new[node] = actual
        return
    expected = recorded().get(node)
    if expected is not None and expected != actual:
        pytest.fail(
            f"the commands differ from the golden stream of {node} "
            f"({SCENARIOS.name}), {first_difference(expected, actual)}",
            pytrace=False,
        )


def pytest_sessionfinish(session: pytest.Session) -> None:
    if not RECORDING or not _new:
        return
    streams = {**recorded(), **_new}
    SCENARIOS.parent.mkdir(parents=True, exist_ok=True)
    with (
        SCENARIOS.open("wb") as raw,
        gzip.GzipFile(fileobj=raw, mode="wb", mtime=0, filename="") as f,
    ):
        f.write(json.dumps(dict(sorted(streams.items())), indent=0).encode())
