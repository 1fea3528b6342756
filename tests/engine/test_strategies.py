"""The strategies beyond the contract's three, on a virtual clock."""

from __future__ import annotations

import random
from collections import Counter

from ringmaster.engine.model import Presence, RingFailure

from .sim import Sim, cancels, restart_changes_nothing, rings, serve


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
        sim = Sim("random", agents=4, rng=random.Random(seed))
        return [serve(sim, f"c{i}", talk_s=1) for i in range(400)]

    first = picks(7)
    assert first == picks(7)
    assert first != picks(8)
    counts = Counter(first)
    # 400 draws over 4 agents: each near 100 (5 standard deviations is ~43).
    assert set(counts) == {"101", "102", "103", "104"}
    assert all(60 <= n <= 140 for n in counts.values()), counts


# --- rrordered ------------------------------------------------------------------------


def test_rrordered_resumes_after_the_agent_who_answered_last() -> None:
    sim = Sim("rrordered", agents=4, timeout=10)
    assert serve(sim, "c1") == "101"
    assert rings(sim.arrive("c2")) == [("c2", "102")]  # after 101, who answered last
    assert rings(sim.advance(10)) == [("c2", "103")]  # unanswered: on down the order
    sim.hangup("c2")  # nobody answered c2, so the memory stays on 101...
    assert rings(sim.arrive("c3")) == [("c3", "102")]  # ...where roundrobin would ring 104


def test_rrordered_wraps_round_after_the_last_agent() -> None:
    sim = Sim("rrordered", agents=3, timeout=10)
    sim.presence(Presence.PAUSED, "101", "102")
    serve(sim, "c1")  # 103 answers
    sim.login("101", "102")
    assert rings(sim.arrive("c2")) == [("c2", "101")]


def test_rrordered_memory_survives_a_restart() -> None:
    def before(sim: Sim) -> None:
        serve(sim, "c1")
        serve(sim, "c2")

    def after(sim: Sim) -> None:
        sim.arrive("c3")

    out = restart_changes_nothing(lambda: Sim("rrordered", agents=3), before, after)
    assert rings(out) == [("c3", "103")]


# --- wrandom ----------------------------------------------------------------------------


def test_wrandom_draws_agents_with_weight_one_over_one_plus_penalty() -> None:
    def picks(seed: int) -> list[str]:
        sim = Sim("wrandom", agents=3, rng=random.Random(seed))
        sim.enrol(1, 2, penalty=1)
        sim.enrol(1, 3, penalty=3)
        return [serve(sim, f"c{i}", talk_s=1) for i in range(700)]

    first = picks(11)
    assert first == picks(11)
    counts = Counter(first)
    # Weights 1, 1/2 and 1/4: of 700 draws, 400, 200 and 100 expected. The
    # bounds are 5 standard deviations wide, and fail a uniform draw (233
    # each) or one that rang the lowest penalty only, as the tiers would.
    assert 335 <= counts["101"] <= 465, counts
    assert 140 <= counts["102"] <= 260, counts
    assert 54 <= counts["103"] <= 146, counts


def test_wrandom_draws_again_among_those_not_yet_tried() -> None:
    sim = Sim("wrandom", agents=3, timeout=10, rng=random.Random(3))
    sim.arrive("c1")
    sim.advance(20)
    assert sorted(extension for _, extension in rings(sim.log)) == ["101", "102", "103"]


# --- longestidle ------------------------------------------------------------------------


def test_longestidle_ranks_agents_by_their_last_call_in_any_queue() -> None:
    sim = Sim("longestidle", agents=3)
    sim.add_queue(2, "linear", enrolled=[3])
    assert serve(sim, "c1") == "101"  # nobody had a call yet: enrolment order
    assert serve(sim, "c2") == "102"  # never had one: before 101
    assert serve(sim, "d1", did="+101") == "103"  # a call of queue 2, ending last
    # leastrecent would ring 103 now (it never answered in queue 1).
    assert [serve(sim, f"c{i}") for i in range(3, 6)] == ["101", "102", "103"]


def test_longestidle_memory_survives_a_restart() -> None:
    def make() -> Sim:
        sim = Sim("longestidle", agents=3)
        sim.add_queue(2, "linear", enrolled=[3])
        return sim

    def before(sim: Sim) -> None:
        serve(sim, "d1", did="+101")
        serve(sim, "c1")

    def after(sim: Sim) -> None:
        serve(sim, "c2")
        serve(sim, "c3")

    out = restart_changes_nothing(make, before, after)
    assert rings(out) == [("c2", "102"), ("c3", "103")]


# --- ringprogressive --------------------------------------------------------------------


def test_ringprogressive_adds_one_agent_every_delay_and_the_first_answer_wins() -> None:
    sim = Sim("ringprogressive", agents=3, timeout=30, ring_progressive_delay=10)
    assert rings(sim.arrive("c1")) == [("c1", "101")]
    assert sim.advance(9.999) == []
    assert rings(sim.advance(0.001)) == [("c1", "102")]
    assert sim.ringing() == {"c1": ["101", "102"]}  # the first keeps ringing
    assert rings(sim.advance(10)) == [("c1", "103")]
    out = sim.answer("c1", "102")
    assert sorted(cancels(out)) == [
        ("c1", "101", "answered_elsewhere"),
        ("c1", "103", "answered_elsewhere"),
    ]
    assert sim.engine.next_deadline() is None  # no more agents will be added


def test_ringprogressive_rings_time_out_one_by_one_then_a_new_round_begins() -> None:
    sim = Sim("ringprogressive", agents=3, timeout=15, retry=5, ring_progressive_delay=10)
    sim.arrive("c1")  # 0 s: 101
    sim.advance(10)  # 10 s: and 102
    out = sim.advance(5)
    assert cancels(out) == [("c1", "101", "timeout")]  # 15 s
    assert sim.ringing() == {"c1": ["102"]}
    assert rings(sim.advance(5)) == [("c1", "103")]  # 20 s: the next, on time
    assert cancels(sim.advance(5)) == [("c1", "102", "timeout")]  # 25 s
    out = sim.advance(10)  # 35 s: everyone was tried: the retry pause
    assert cancels(out) == [("c1", "103", "timeout")]
    assert rings(out) == []
    assert rings(sim.advance(4.999)) == []
    assert rings(sim.advance(0.001)) == [("c1", "101")]  # 40 s: a new round


def test_ringprogressive_moves_on_at_once_when_the_only_ring_fails() -> None:
    sim = Sim("ringprogressive", agents=3, ring_progressive_delay=10)
    sim.arrive("c1")
    sim.advance(3)
    assert rings(sim.fail("c1", "101", RingFailure.BUSY)) == [("c1", "102")]
    assert rings(sim.advance(9.999)) == []  # the next step counts from 102's ring...
    assert rings(sim.advance(0.001)) == [("c1", "103")]  # ...not from 101's


def test_ringprogressive_adds_an_agent_who_frees_up_after_a_step_found_nobody() -> None:
    sim = Sim("ringprogressive", agents=2, timeout=60, ring_progressive_delay=10)
    sim.presence(Presence.PAUSED, "102")
    sim.arrive("c1")
    assert rings(sim.advance(12)) == []
    assert rings(sim.login("102")) == [("c1", "102")]


def test_ringprogressive_adds_no_higher_penalty_while_a_lower_one_rings() -> None:
    sim = Sim("ringprogressive", agents=2, timeout=15, ring_progressive_delay=10)
    sim.enrol(1, 2, penalty=1)
    sim.arrive("c1")
    assert rings(sim.advance(10)) == []
    assert rings(sim.advance(5)) == [("c1", "102")]  # 101 was tried: now the next tier


def test_ringprogressive_in_progress_survives_a_restart() -> None:
    def before(sim: Sim) -> None:
        sim.arrive("c1")
        sim.advance(15)  # 101 and 102 ring, 103 is next at 20 s

    def after(sim: Sim) -> None:
        assert sim.advance(4.999) == []
        sim.advance(0.001)
        sim.answer("c1", "103")

    out = restart_changes_nothing(
        lambda: Sim("ringprogressive", agents=3, timeout=30, ring_progressive_delay=10),
        before,
        after,
    )
    assert rings(out) == [("c1", "103")]
    assert sorted(cancels(out)) == [
        ("c1", "101", "answered_elsewhere"),
        ("c1", "102", "answered_elsewhere"),
    ]
