"""The strategies beyond the contract's three, on a virtual clock."""

from __future__ import annotations

import random
from collections import Counter

from ringmaster.engine.core import Engine

from .sim import Sim, rings


def serve(sim: Sim, call_id: str, talk_s: float = 10) -> str:
    """Arrive, answer whoever rings, talk, hang up; return who took it."""
    ((_, extension),) = rings(sim.arrive(call_id))
    sim.answer(call_id, extension)
    sim.advance(talk_s)
    sim.hangup(call_id)
    return extension


def test_linear_always_starts_from_the_top() -> None:
    sim = Sim("linear", agents=3)
    assert [serve(sim, f"c{i}") for i in range(3)] == ["101", "101", "101"]
    sim.arrive("busy")
    sim.answer("busy", "101")
    assert rings(sim.arrive("c9")) == [("c9", "102")]
    sim.advance(15)  # no answer from 102: down the list
    assert sim.ringing() == {"c9": ["103"]}


def test_fewestcalls_rings_who_completed_the_fewest_calls_here() -> None:
    sim = Sim("fewestcalls", agents=3)
    assert [serve(sim, f"c{i}") for i in range(6)] == ["101", "102", "103"] * 2
    sim.arrive("x")
    sim.answer("x", "101")
    sim.hangup("x")  # 101 now has 3
    assert [serve(sim, f"d{i}") for i in range(2)] == ["102", "103"]


def test_leasttalktime_rings_who_talked_least_here() -> None:
    sim = Sim("leasttalktime", agents=3)
    assert serve(sim, "c1", talk_s=100) == "101"
    assert serve(sim, "c2", talk_s=5) == "102"
    assert serve(sim, "c3", talk_s=50) == "103"
    assert serve(sim, "c4", talk_s=1) == "102"  # 5 s so far, the least
    assert serve(sim, "c5", talk_s=1) == "102"  # 6 s, still the least


def test_random_is_uniform_and_repeatable_for_a_seed() -> None:
    def picks(seed: int) -> list[str]:
        sim = Sim("random", agents=4)
        sim.engine = Engine(rng=random.Random(seed))
        for event in sim.store.config:
            sim.engine.handle(event, sim.now)
        sim.login("101", "102", "103", "104")
        return [serve(sim, f"c{i}", talk_s=1) for i in range(400)]

    first = picks(7)
    assert first == picks(7)
    assert first != picks(8)
    counts = Counter(first)
    # 400 draws over 4 agents: each near 100 (5 standard deviations is ~43).
    assert set(counts) == {"101", "102", "103", "104"}
    assert all(60 <= n <= 140 for n in counts.values()), counts
