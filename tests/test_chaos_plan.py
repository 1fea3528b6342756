"""The chaos harness's own promises: its decisions follow the seed, its set-up is valid."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from bench.chaos.fuzz import corpus
from bench.chaos.plan import Plan, arrivals, faults, provisioning, queues, reaction

from ringmaster.api.provisioning import provision
from ringmaster.engine.strategies import strategy_names
from ringmaster.store import Store


def plan(seed: int) -> Plan:
    p = Plan(seed=seed, calls_per_s=20, duration_s=30, kills=4, broker_restarts=2)
    return dataclasses.replace(p, queues=queues(p.calls_per_s))


def test_the_same_seed_makes_the_same_decisions_and_another_seed_others() -> None:
    assert arrivals(plan(1)) == arrivals(plan(1))
    assert faults(plan(1)) == faults(plan(1))
    assert list(corpus(1, "P", 500)) == list(corpus(1, "P", 500))
    assert reaction(plan(1), 1, "c", "101", n=0, timeout=4) == reaction(
        plan(1), 1, "c", "101", n=0, timeout=4
    )
    assert arrivals(plan(1)) != arrivals(plan(2))
    assert list(corpus(1, "P", 500)) != list(corpus(2, "P", 500))


def test_faults_fall_inside_the_load_and_as_many_as_asked() -> None:
    found = faults(plan(3))
    assert [f.kind for f in found].count("kill") == 4
    assert [f.kind for f in found].count("broker") == 2
    assert all(3.0 <= f.at_s <= 27.0 for f in found)


def test_the_corpus_tries_every_kind_of_bad_input() -> None:
    payloads = [p for _, p in corpus(1, "P", 10_000)]  # the short run's
    topics = [t for t, _ in corpus(1, "P", 10_000)]
    assert any(b"\\udfff" in p for p in payloads)
    assert any(b"\\u0000" in p for p in payloads)
    assert any(len(p) >= 1_000_000 for p in payloads)
    assert any(p.count(b"[") >= 100_000 or p.count(b'{"a":') >= 10_000 for p in payloads)
    assert any(not _utf8(p) for p in payloads)
    assert any(t.split("/")[1] in ("abc", "0", "01", "") for t in topics)
    assert any(t.endswith("/pbx/call/unknown") for t in topics)


def test_the_corpus_never_names_a_call_or_extension_of_the_pbx_model() -> None:
    # Unless they are fuzz ids, the PBX model's calls and agents could be disturbed.
    agents = {a for q in plan(1).queues for a in q.agents}
    for _, payload in corpus(1, "P", 3000):
        text = payload.decode("utf-8", "replace")
        assert '"c1-' not in text
        assert not any(f'"{a}"' in text for a in agents)


async def test_every_strategy_is_provisioned_and_the_file_is_valid(tmp_path: Path) -> None:
    p = plan(1)
    assert {q.strategy for q in p.queues} == set(strategy_names())
    config = tmp_path / "chaos.toml"
    config.write_text(provisioning(p.queues), encoding="utf-8")
    async with await Store.open(tmp_path / "rm.sqlite3") as store:
        await provision(config, store)


def _utf8(payload: bytes) -> bool:
    try:
        payload.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True
