"""`ringmaster simulate`: determinism, conservation, and agreement with Erlang C."""

from __future__ import annotations

import json
import math
import statistics
from fractions import Fraction
from pathlib import Path
from typing import NamedTuple

import pytest

from ringmaster.cli import main
from ringmaster.planning.erlang import average_speed_of_answer, erlang_b, erlang_c, service_level
from ringmaster.planning.simulate import (
    HandleDistribution,
    SimulationError,
    Workload,
    scenario_from_spec,
    simulate,
    single_queue,
    staff_for,
)
from ringmaster.planning.simulate.results import ServiceLevelEstimate, student_t_quantile
from ringmaster.planning.simulate.staffing import MIN_REPLICATIONS, replication_seed
from ringmaster.provision import ProvisionError, check_file

DEMO = Path(__file__).resolve().parents[1] / "config" / "demo.toml"

# --- Erlang C on its own ---------------------------------------------------------------------


def erlang_c_by_the_sum(c: int, a: float) -> float:
    """The textbook form: (a^c/c! * c/(c-a)) / (sum_{k<c} a^k/k! + a^c/c! * c/(c-a))."""
    top = a**c / math.factorial(c) * c / (c - a)
    return top / (sum(a**k / math.factorial(k) for k in range(c)) + top)


@pytest.mark.parametrize(
    ("agents", "load", "exact"),
    [
        (1, 0.5, Fraction(1, 2)),  # M/M/1: P(wait) = rho
        (1, 0.9, Fraction(9, 10)),
        (2, 1.0, Fraction(1, 3)),  # M/M/2: 2 rho^2 / (1 + rho), rho = 1/2
        (2, 1.5, Fraction(9, 14)),  # rho = 3/4
        (3, 2.0, Fraction(4, 9)),
    ],
)
def test_erlang_c_exact_values(agents: int, load: float, exact: Fraction) -> None:
    assert erlang_c(agents, load) == pytest.approx(float(exact), rel=1e-12)


@pytest.mark.parametrize(("agents", "load"), [(5, 3.0), (5, 4.25), (20, 18.0), (55, 48.0)])
def test_erlang_c_agrees_with_the_textbook_sum(agents: int, load: float) -> None:
    assert erlang_c(agents, load) == pytest.approx(erlang_c_by_the_sum(agents, load), rel=1e-9)


def test_erlang_b_and_the_derived_figures() -> None:
    assert erlang_b(1, 1.0) == pytest.approx(0.5)  # B(1, a) = a / (1 + a)
    assert erlang_b(2, 1.0) == pytest.approx(0.2)  # (a^2/2) / (1 + a + a^2/2)
    # M/M/1 with rho = 0.5 and a 60 s mean: ASA = rho S / (1 - rho) = 60 s;
    # P(wait > t) = rho exp(-(1 - rho) t / S).
    assert average_speed_of_answer(1, 0.5, 60.0) == pytest.approx(60.0)
    assert service_level(1, 0.5, 60.0, 60.0) == pytest.approx(1 - 0.5 * math.exp(-0.5))
    assert erlang_c(3, 3.0) == 1.0
    assert average_speed_of_answer(3, 3.5, 60.0) == math.inf


# --- the simulation ------------------------------------------------------------------------


def small(**changes: object) -> Workload:
    base: dict[str, object] = {
        "rates": {"600": [100.0]},
        "calls": 1500,
        "patience_mean_s": 60.0,
        "no_answer": 0.1,
        "handle": HandleDistribution.LOGNORMAL,
        "seed": 11,
    }
    base.update(changes)
    return Workload(**base)  # type: ignore[arg-type]


@pytest.mark.parametrize("strategy", ["ringall", "random"])
def test_same_seed_same_result_other_seed_other_result(strategy: str) -> None:
    first = simulate(single_queue(5, strategy), small())
    again = simulate(single_queue(5, strategy), small())
    other = simulate(single_queue(5, strategy), small(seed=12))
    assert first == again
    assert first.queues[0].waits == again.queues[0].waits
    assert first.queues[0].waits != other.queues[0].waits


@pytest.mark.parametrize("strategy", ["ringall", "leastrecent", "roundrobin"])
@pytest.mark.parametrize(
    "changes",
    [
        {},
        {"patience_mean_s": None, "drain_s": 0.0},  # overloaded, cut short: calls still wait
        {"calls": None, "duration_s": 1800.0, "wrapup_s": 30},
    ],
)
def test_every_offered_call_is_accounted_for(strategy: str, changes: dict[str, object]) -> None:
    result = simulate(single_queue(3, strategy), small(**changes))
    q = result.queues[0]
    assert q.offered == q.answered + q.abandoned + q.rejected + q.waiting_at_end
    assert q.offered == result.calls
    assert q.answered == len(q.waits)
    assert 0 <= q.service_level <= 1
    assert 0 <= q.occupancy <= 1


def test_conservation_leaves_calls_waiting_when_cut_short() -> None:
    q = simulate(single_queue(1), small(patience_mean_s=None, drain_s=0.0)).queues[0]
    assert q.waiting_at_end > 0
    assert q.offered == q.answered + q.abandoned + q.waiting_at_end


def test_a_schedule_changes_the_rate_per_interval() -> None:
    workload = small(rates={"600": [0.0, 360.0]}, interval_s=600.0, calls=None, duration_s=1200.0)
    result = simulate(single_queue(10), workload)
    # No calls in the first interval, ~60 in the second.
    assert 30 < result.calls < 100
    assert result.queues[0].offered == result.calls


def test_warmup_calls_are_not_counted() -> None:
    result = simulate(single_queue(5), small(warmup_s=1800.0))
    assert result.queues[0].offered < result.calls


def test_unknown_queue_and_missing_rate_are_errors() -> None:
    with pytest.raises(SimulationError, match="unknown queue"):
        simulate(single_queue(2), small(rates={"999": [10.0]}))
    with pytest.raises(SimulationError, match="give a rate"):
        simulate(single_queue(2), small(rates={"600": [0.0]}))


def test_provisioning_file_scenario_and_restaffing() -> None:
    spec = check_file(DEMO)
    scenario = scenario_from_spec(spec)
    assert [(q.key, q.name, q.agents) for q in scenario.queues] == [
        ("600", "Sales", 3),
        ("601", "Support", 3),
        ("602", "Billing", 2),
    ]
    assert scenario_from_spec(spec, {"601": 7}).queue("Support").agents == 7
    result = simulate(scenario, small(rates={"600": [60.0], "601": [60.0]}, calls=600))
    assert result.calls == 600  # across queues, not one more
    assert {q.queue: q.offered > 0 for q in result.queues} == {
        "600": True,
        "601": True,
        "602": False,
    }


def test_check_file_reports_references_to_missing_entries(tmp_path: Path) -> None:
    path = tmp_path / "x.toml"
    path.write_text(
        '[[tenant]]\nid = 1\nname = "A"\n\n[[queue]]\ntenant_id = 1\nqueue_number = "600"\n'
        'name = "Q"\nstrategy = "ringall"\ntimeout = 15\nagents = ["101"]\n',
        encoding="utf-8",
    )
    with pytest.raises(ProvisionError, match=r'queue\[1\]\.agents\[1\]: No extension "101"'):
        check_file(path)


def test_staffing_search_finds_the_smallest_count_that_meets() -> None:
    workload = Workload(rates={"600": [200.0]}, calls=3000, ring_delay_s=0.0, seed=5)
    answer = staff_for(single_queue, workload, queue="600", target=0.8, threshold_s=20.0)
    assert answer.agents is not None
    assert answer.result is not None
    by_count = {s.agents: s for s in answer.steps}  # the last step of each count
    assert by_count[answer.agents].meets
    assert not by_count[answer.agents - 1].meets  # the bisection pinned it down
    # Erlang C says 14 agents for 10 Erlangs at 80/20 (13 give 79.6%); a 3,000-call
    # sample lands within one agent of that.
    assert abs(answer.agents - 14) <= 1


# --- the staffing search's confidence --------------------------------------------------------


def erlang_c_staffing(load: float, target: float, handle_s: float = 180.0) -> int:
    """The fewest agents for which Erlang C's SL (20 s) reaches `target`."""
    agents = math.floor(load) + 1
    while service_level(agents, load, handle_s, 20.0) < target:
        agents += 1
    return agents


def staffing_workload(load: float, calls: int, seed: int) -> Workload:
    """An M/M/c queue (agents answer at once) of `load` Erlangs, counted after warm-up."""
    return Workload(
        rates={"600": [load / MEAN_HANDLE_S * 3600]},
        handle_mean_s=MEAN_HANDLE_S,
        calls=calls,
        ring_delay_s=0.0,
        warmup_s=10 * MEAN_HANDLE_S,
        seed=seed,
    )


def test_student_t_bounds_are_the_tables() -> None:
    assert student_t_quantile(0.999, 9) == pytest.approx(T_999_9DF, abs=5e-4)
    assert student_t_quantile(0.95, 1) == pytest.approx(12.706, abs=5e-4)
    assert student_t_quantile(0.95, 2) == pytest.approx(4.303, abs=5e-4)
    assert student_t_quantile(0.95, 9) == pytest.approx(2.262, abs=5e-4)
    assert student_t_quantile(0.99, 29) == pytest.approx(2.756, abs=5e-4)
    with pytest.raises(ValueError, match="no t bound"):
        student_t_quantile(1.0, 3)


def test_replication_seeds_are_the_users_then_derived_from_it() -> None:
    assert replication_seed(42, 0) == 42
    derived = [replication_seed(42, r) for r in range(1, 20)]
    assert derived == [replication_seed(42, r) for r in range(1, 20)]
    assert len(set(derived)) == len(derived)
    assert 42 not in derived
    assert derived != [replication_seed(43, r) for r in range(1, 20)]


def test_the_same_seed_gives_the_same_answer_and_intervals() -> None:
    workload = staffing_workload(5.0, 1500, seed=5)
    first = staff_for(single_queue, workload, queue="600", target=0.6, threshold_s=20.0)
    again = staff_for(single_queue, workload, queue="600", target=0.6, threshold_s=20.0)
    assert first.agents is not None
    assert (first.agents, first.at, first.below, first.steps) == (
        again.agents,
        again.at,
        again.below,
        again.steps,
    )
    assert first.result == again.result


def test_far_from_the_boundary_stops_after_the_minimum_replications() -> None:
    # 5 Erlangs: Erlang C gives 6 agents 47% and 7 agents 74% within 20 s; 60% lies
    # 13 points from each, far more than a 3-run interval is wide.
    workload = staffing_workload(5.0, 6000, seed=5)
    answer = staff_for(single_queue, workload, queue="600", target=0.6, threshold_s=20.0)
    assert answer.agents == 7
    assert answer.clear
    assert answer.at is not None
    assert answer.below is not None
    assert answer.at.replications == answer.below.replications == MIN_REPLICATIONS
    assert answer.below.high < 0.6 <= answer.at.low


def test_the_answer_agrees_with_erlang_c_and_its_intervals_hold_erlang_cs_levels() -> None:
    # 10 Erlangs: Erlang C gives 12 agents 64% and 13 agents 79.6% within 20 s.
    load, target = 10.0, 0.72
    workload = staffing_workload(load, 6000, seed=5)
    answer = staff_for(single_queue, workload, queue="600", target=target, threshold_s=20.0)
    assert answer.agents == erlang_c_staffing(load, target) == 13
    assert answer.clear
    assert answer.at is not None
    assert answer.below is not None
    assert answer.below.high < target <= answer.at.low
    for found in (answer.at, answer.below):
        # The replications are independent runs, so the 99.9% t interval of their mean
        # holds the exact M/M/c figure; their standard error is small enough for that to
        # mean something (one agent moves the SL by 15 points here).
        wide = ServiceLevelEstimate.of(found.agents, found.levels, 0.999)
        exact = service_level(found.agents, load, MEAN_HANDLE_S, 20.0)
        assert wide.low < exact < wide.high, (found, exact)
        assert statistics.stdev(found.levels) / math.sqrt(found.replications) < 0.02


def test_more_replications_narrow_the_interval() -> None:
    workload = staffing_workload(10.0, 3000, seed=7)
    answer = staff_for(
        single_queue, workload, queue="600", target=0.72, threshold_s=20.0, max_replications=12
    )
    assert answer.below is not None
    levels = answer.below.levels
    assert len(levels) >= 8  # 12 agents, near the target, needed many runs
    widths = [
        ServiceLevelEstimate.of(12, levels[:n], 0.95).high
        - ServiceLevelEstimate.of(12, levels[:n], 0.95).low
        for n in (3, len(levels) // 2, len(levels))
    ]
    assert widths == sorted(widths, reverse=True)
    assert widths[-1] < widths[0] / 2


def test_an_unclear_question_says_so_at_the_limit() -> None:
    # 13 agents give 79.6% by Erlang C: two runs cannot tell that from 80%.
    workload = staffing_workload(10.0, 3000, seed=6)
    answer = staff_for(
        single_queue, workload, queue="600", target=0.8, threshold_s=20.0, max_replications=2
    )
    assert answer.agents in (13, 14)
    assert not answer.clear
    assert answer.at is not None
    assert answer.below is not None
    assert answer.at.replications <= 2
    assert answer.below.replications <= 2
    assert answer.below.mean < 0.8 <= answer.at.mean


def test_a_single_replication_is_the_plain_search_and_is_never_clear() -> None:
    workload = Workload(rates={"600": [200.0]}, calls=3000, ring_delay_s=0.0, seed=5)
    answer = staff_for(
        single_queue, workload, queue="600", target=0.8, threshold_s=20.0, max_replications=1
    )
    assert answer.at is not None
    assert answer.at.replications == 1
    assert not answer.clear
    assert answer.result is not None
    assert answer.result.seed == 5
    with pytest.raises(SimulationError, match="confidence"):
        staff_for(single_queue, workload, queue="600", target=0.8, threshold_s=20.0, confidence=1)


# --- agreement with queueing theory ---------------------------------------------------------

# The engine with agents who always answer at once (ring delay 0, no-answer 0), one
# queue, Poisson arrivals, exponential handle times and no abandonment is an M/M/c
# FIFO queue, for which Erlang C is exact. The waits of answered calls, in answer order
# (= arrival order, FIFO), are cut into BATCHES consecutive batches; their means are
# close to independent when a batch spans several relaxation times of the queue
# (about S / (c (1 - sqrt(rho))^2): ~130 calls for c=5, rho=0.85; ~340 for c=20,
# rho=0.9; a batch here holds 1,000-2,000). The tolerance is then the two-sided 99.9%
# Student t quantile with BATCHES - 1 degrees of freedom times the standard error of the
# batch means. The seeds are fixed, so the test is deterministic; the bound says why a
# correct engine passes it. A second check keeps it meaningful: the standard error must
# be small, so that a wrong engine cannot hide in a wide interval. Waits are heavy-tailed
# near saturation, so the ASA's interval is much wider than that of the probability of
# waiting and of the service level, which are means of 0/1 indicators.
BATCHES = 10
T_999_9DF = 4.781
MEAN_HANDLE_S = 180.0


def batch_means(values: list[float]) -> tuple[float, float]:
    """(mean, standard error) by the method of batch means."""
    size = len(values) // BATCHES
    means = [statistics.fmean(values[i * size : (i + 1) * size]) for i in range(BATCHES)]
    return statistics.fmean(means), statistics.stdev(means) / math.sqrt(BATCHES)


class MmcCase(NamedTuple):
    agents: int
    rho: float
    calls: int
    strategy: str
    max_se_wait: float  # the power checks: largest standard errors accepted
    max_rel_se_asa: float


@pytest.mark.parametrize(
    "case",
    [
        MmcCase(5, 0.6, 12_000, "roundrobin", 0.02, 0.15),
        MmcCase(5, 0.85, 20_000, "leastrecent", 0.03, 0.25),
        MmcCase(20, 0.9, 15_000, "leastrecent", 0.05, 0.4),
    ],
    ids=lambda c: f"N={c.agents},rho={c.rho}",
)
def test_mmc_waits_agree_with_erlang_c(case: MmcCase) -> None:
    agents, rho, calls, strategy, max_se_wait, max_rel_se_asa = case
    load = agents * rho
    workload = Workload(
        rates={"600": [load / MEAN_HANDLE_S * 3600]},
        handle_mean_s=MEAN_HANDLE_S,
        ring_delay_s=0.0,
        no_answer=0.0,
        patience_mean_s=None,
        calls=calls,
        warmup_s=20 * MEAN_HANDLE_S,  # start from an empty queue, count from near steady state
        seed=2024,
    )
    q = simulate(single_queue(agents, strategy), workload).queues[0]
    assert q.abandoned == 0
    assert q.waiting_at_end == 0

    waited, se_waited = batch_means([1.0 if w > 0 else 0.0 for w in q.waits])
    within, se_within = batch_means([1.0 if w <= 20.0 else 0.0 for w in q.waits])
    asa, se_asa = batch_means(list(q.waits))
    expected_waited = erlang_c(agents, load)
    expected_within = service_level(agents, load, MEAN_HANDLE_S, 20.0)
    expected_asa = average_speed_of_answer(agents, load, MEAN_HANDLE_S)

    assert se_waited < max_se_wait
    assert se_within < max_se_wait
    assert se_asa < max_rel_se_asa * expected_asa
    assert abs(waited - expected_waited) < T_999_9DF * se_waited, (waited, expected_waited)
    assert abs(within - expected_within) < T_999_9DF * se_within, (within, expected_within)
    assert abs(asa - expected_asa) < T_999_9DF * se_asa, (asa, expected_asa)
    assert q.service_level == pytest.approx(within, abs=0.01)  # batches drop a remainder
    assert q.occupancy == pytest.approx(rho, abs=0.05)


# --- the command -------------------------------------------------------------------------------


def test_cli_table_and_speed(capsys: pytest.CaptureFixture[str]) -> None:
    status = main(["simulate", "--agents", "4", "--rate", "60", "--calls", "400", "--seed", "3"])
    out, err = capsys.readouterr()
    assert status == 0
    assert out.splitlines()[0].split() == ["queue", "600", "Queue"]
    assert "service level (SL, 20 s)" in out
    assert "calls/s" in err


def test_cli_json_with_a_file(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["simulate", str(DEMO), "--rate", "Sales=60", "--rate", "601=30,60", "--json"]
    status = main([*argv, "--interval", "15m", "--patience", "90s", "--handle", "lognormal"])
    document = json.loads(capsys.readouterr().out)
    assert status == 0
    assert [q["queue"] for q in document["queues"]] == ["600", "601", "602"]
    # A two-step schedule of 15 minutes runs once: arrivals stop at 30 minutes.
    assert 900 < document["simulated_s"] < 1800 + 3600


def test_cli_staff_for(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["simulate", "--agents", "1", "--rate", "100", "--calls", "1500", "--ring-delay", "0"]
    status = main([*argv, "--staff-for", "80/20", "--json", "--confidence", "0.9"])
    out, err = capsys.readouterr()
    assert status == 0
    staffing = json.loads(out)["staffing"]
    assert any(s["agents"] == staffing["agents"] for s in staffing["steps"])
    at, below = staffing["at"], staffing["below"]
    assert at["agents"] == staffing["agents"] == below["agents"] + 1
    assert staffing["confidence"] == at["confidence"] == 0.9
    assert at["replications"] == len(at["levels"]) >= MIN_REPLICATIONS
    assert at["low"] <= at["service_level"] <= at["high"]
    assert staffing["max_replications"] == 10
    assert "agents: SL" in err
    assert "runs" in err


def test_cli_staff_for_text_says_when_it_is_not_clear(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["simulate", "--agents", "1", "--rate", "200", "--calls", "1500", "--ring-delay", "0"]
    status = main([*argv, "--staff-for", "80/20", "--max-replications", "2", "--seed", "6"])
    out, _ = capsys.readouterr()
    assert status == 0
    lines = out.splitlines()
    assert "NOT CLEAR after 2 runs" in lines[0]
    assert "95% interval" in lines[1]
    assert "95% interval" in lines[2]
    assert lines[3].startswith("one run of")


@pytest.mark.parametrize(
    ("option", "value"), [("--confidence", "1"), ("--confidence", "x"), ("--max-replications", "0")]
)
def test_cli_staff_for_rejects_bad_options(
    option: str, value: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["simulate", "--agents", "1", "--rate", "100", "--staff-for", "80/20", option, value])
    assert exit_.value.code == 2
    assert option in capsys.readouterr().err


def test_cli_errors(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["simulate", "--rate", "60"]) == 2
    assert "provisioning file or --agents" in capsys.readouterr().err
    assert main(["simulate", str(DEMO), "--rate", "60"]) == 2
    assert "say which queue" in capsys.readouterr().err
