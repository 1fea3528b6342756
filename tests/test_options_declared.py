"""The option declarations and what is derived from them (ringmaster.options)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from pydantic import BaseModel, ConfigDict, ValidationError

from ringmaster.engine.model import (
    AgentCondition,
    EnrolmentOptions,
    PenaltyRule,
    QueueConfig,
    QueueId,
    SkillRule,
    TenantId,
)
from ringmaster.engine.options import declared
from ringmaster.options import (
    ENROLMENT_OPTIONS,
    QUEUE_OPTIONS,
    OptionError,
    engine_values,
    from_plain,
    options_model,
    plain_values,
    render_docs,
)

DOCS = Path(__file__).resolve().parents[1] / "docs" / "options.md"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


def test_docs_tables_are_generated_from_the_declarations() -> None:
    text = DOCS.read_text(encoding="utf-8")
    assert text == render_docs(text), (
        "docs/options.md is stale: run `python -m ringmaster.options docs/options.md`"
    )


def test_a_changed_declaration_makes_the_docs_stale() -> None:
    text = DOCS.read_text(encoding="utf-8")
    edited = text.replace("seconds to wait after a full round of rings", "seconds to wait")
    assert edited != text
    assert render_docs(edited) == text


def test_every_option_field_is_declared() -> None:
    # The identity fields are the queue's documented resource fields, not options.
    identity = {"queue_id", "tenant_id", "name", "queue_number", "strategy", "status"}
    for cls, skip in ((QueueConfig, identity), (EnrolmentOptions, set())):
        names = {f.name for f, _ in declared(cls)}
        assert names == {f.name for f in dataclasses.fields(cls)} - skip


def _busy_queue() -> QueueConfig:
    return QueueConfig(
        QueueId(1),
        TenantId(1),
        "Sales",
        "600",
        "ringall",
        15,
        retry=7,
        join_empty=frozenset({AgentCondition.WRAPUP, AgentCondition.BUSY}),
        penalty_rules=(PenaltyRule(0, 1), PenaltyRule(30, 3)),
        skill_rules=(SkillRule(60, 2),),
    )


def test_plain_values_read_back_as_the_same_options() -> None:
    queue = _busy_queue()
    plain = plain_values(QUEUE_OPTIONS, queue)
    assert plain["join_empty"] == ["busy", "wrapup"]  # the enum's order
    assert plain["penalty_rules"] == [
        {"after": 0, "max_penalty": 1},
        {"after": 30, "max_penalty": 3},
    ]
    assert dataclasses.replace(queue, **from_plain(QUEUE_OPTIONS, plain)) == queue
    agent = EnrolmentOptions(penalty=2, wrapup_time=None, max_no_answer=3)
    assert (
        EnrolmentOptions(**from_plain(ENROLMENT_OPTIONS, plain_values(ENROLMENT_OPTIONS, agent)))
        == agent
    )


def test_a_missing_stored_option_reads_as_its_default() -> None:
    assert from_plain(QUEUE_OPTIONS, {}) == {}
    assert from_plain(QUEUE_OPTIONS, {"retry": 9}) == {"retry": 9}


@pytest.mark.parametrize(
    ("stored", "message"),
    [
        ({"retry": -1}, "retry: Input should be greater than or equal to 0"),
        ({"retry": "5"}, "retry: Input should be a valid integer"),
        ({"service_level": 0}, "service_level: Input should be greater than or equal to 1"),
        ({"join_empty": ["busy", "busy"]}, "join_empty: names a condition twice"),
        ({"penalty_rules": [{"after": 5}]}, "penalty_rules: Field required"),
        ({"nonsense": 1}, "unknown option 'nonsense'"),
    ],
)
def test_a_bad_stored_option_is_named(stored: dict[str, object], message: str) -> None:
    with pytest.raises(OptionError, match=message):
        from_plain(QUEUE_OPTIONS, stored)


def test_request_models_carry_bounds_defaults_and_patch_semantics() -> None:
    create = options_model(_Strict, QUEUE_OPTIONS)
    given = create.model_validate({"retry": 3, "leave_when_empty": ["paused"]})
    values = engine_values(QUEUE_OPTIONS, given)
    assert values["retry"] == 3
    assert values["leave_when_empty"] == frozenset({AgentCondition.PAUSED})
    assert values["service_level"] == QueueConfig.__dataclass_fields__["service_level"].default
    with pytest.raises(ValidationError, match="ring_progressive_delay"):
        create.model_validate({"ring_progressive_delay": 0})
    patch = options_model(_Strict, QUEUE_OPTIONS, patch=True)
    assert engine_values(QUEUE_OPTIONS, patch.model_validate({"weight": 4})) == {"weight": 4}
    with pytest.raises(ValidationError, match="weight"):
        patch.model_validate({"weight": None})
    agent_patch = options_model(_Strict, ENROLMENT_OPTIONS, patch=True)
    # An agent's wrap-up alone takes null: "the queue's".
    assert engine_values(ENROLMENT_OPTIONS, agent_patch.model_validate({"wrapup_time": None})) == {
        "wrapup_time": None
    }
