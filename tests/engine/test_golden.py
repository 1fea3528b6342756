"""The golden corpus: the engine gives, byte for byte, the command streams it gave when recorded.

A change of behaviour fails here first, at the first step that differs. When
the change is meant, re-record (`python -m tests.engine.golden_corpus record
--force`) and say why in the commit.
"""

from __future__ import annotations

import json
from itertools import zip_longest
from typing import Any

from .golden_corpus import (
    GOLDEN,
    coverage,
    decode,
    ending,
    line,
    missing,
    read_lines,
    scripts_of,
)

PARTS = ("commands", "next_deadline", "changes stored", "snapshots")


def first_difference(expected: str, actual: str) -> str:
    """Where two lines of the corpus part, in words."""
    want, got = json.loads(expected), json.loads(actual)
    number = want["script"]
    script = [tuple(a) for a in decode(want["actions"])]
    for step, (w, g) in enumerate(zip_longest(want["steps"], got["steps"])):
        if w == g:
            continue
        if w is None or g is None:
            return f"script {number}: {len(got['steps'])} steps, expected {len(want['steps'])}"
        for part, wp, gp in zip(PARTS, w, g, strict=True):
            if wp == gp:
                continue
            detail = _first_item(wp, gp) if isinstance(wp, list) else f"{wp!r} != {gp!r}"
            return f"script {number}, step {step} ({_action(script, step)}), {part}: {detail}"
    return f"script {number}: the lines differ outside the steps"


def _action(script: list[tuple[Any, ...]], step: int) -> str:
    if step < len(script):
        return repr(script[step])
    return repr(ending(script)[step - len(script)])


def _first_item(want: list[str], got: list[str]) -> str:
    for i, (w, g) in enumerate(zip_longest(want, got)):
        if w != g:
            return f"item {i}:\n  expected {w}\n  actual   {g}"
    return "same items"  # unreachable: the lists differ


def test_every_script_gives_the_recorded_stream() -> None:
    lines = read_lines()
    assert len(lines) >= 300
    for (number, scenario, script), expected in zip(scripts_of(lines), lines, strict=True):
        actual = line(number, scenario, script)
        if actual != expected:
            raise AssertionError(first_difference(expected, actual))


def test_the_scripts_exercise_every_strategy_option_and_action() -> None:
    """A strategy or option added later and missing here means: `generate` anew."""
    scripts = [(scenario, script) for _, scenario, script in scripts_of(read_lines())]
    assert all(not left_out for left_out in missing(coverage(scripts)).values()), (
        f"{GOLDEN} leaves out {missing(coverage(scripts))}"
    )
    # The ending hangs up every call the script may have started.
    assert all(ending(script)[-1] == ("advance", 130.0) for _, script in scripts)
