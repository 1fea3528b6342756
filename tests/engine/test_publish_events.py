"""`Engine(publish_events=False)`: the golden streams without their `Publish*` commands.

The simulator acts only on the PBX commands, so it asks the engine not to make
the monitoring ones; everything else (PBX commands, errors, deadlines, what is
stored, snapshots) must stay exactly as the golden corpus recorded it.
"""

from __future__ import annotations

import functools
import json

import pytest

from ringmaster.engine.core import Engine

from . import sim as sim_module
from .golden_corpus import read_lines, replay, scripts_of

#: Every script of the corpus (a few seconds).
EVERY = 1


def test_without_published_events_every_other_command_is_the_recorded_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(sim_module, "Engine", functools.partial(Engine, publish_events=False))
    lines = read_lines()
    dropped = 0
    for (number, scenario, script), text in list(zip(scripts_of(lines), lines, strict=True))[
        ::EVERY
    ]:
        recorded = json.loads(text)["steps"]
        for step, (want, got) in enumerate(zip(recorded, replay(scenario, script), strict=True)):
            kept = [c for c in want[0] if not c.startswith("Publish")]
            dropped += len(want[0]) - len(kept)
            assert got == [kept, *want[1:]], f"script {number}, step {step}"
    assert dropped > 1000  # the corpus does publish: the comparison is not vacuous
