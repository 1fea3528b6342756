"""`quick_init`: the records made on every ring keep their dataclass's behaviour."""

from __future__ import annotations

import dataclasses
import inspect

import pytest

from ringmaster.engine.commands import CancelRing, Ring
from ringmaster.engine.frozen import quick_init
from ringmaster.engine.model import CallId, CancelReason, ExtensionId, QueueId, TenantId
from ringmaster.engine.records import RingRecord


@dataclasses.dataclass(frozen=True, slots=True)
class _Plain:
    tenant_id: TenantId
    call_id: CallId
    extension: str
    queue_id: QueueId
    timeout: int
    caller_id: str
    ring_id: str = ""


def test_a_quick_init_makes_what_the_dataclass_init_makes() -> None:
    ring = Ring(TenantId(1), CallId("c1"), "201", QueueId(7), 15, "+4930")
    plain = _Plain(TenantId(1), CallId("c1"), "201", QueueId(7), 15, "+4930")
    assert dataclasses.astuple(ring) == dataclasses.astuple(plain)
    assert str(inspect.signature(Ring)) == str(inspect.signature(_Plain))
    named = Ring(
        tenant_id=TenantId(1),
        call_id=CallId("c1"),
        extension="201",
        queue_id=QueueId(7),
        timeout=15,
        caller_id="+4930",
        ring_id="",
    )
    assert named == ring
    assert hash(named) == hash(ring)
    assert dataclasses.replace(ring, ring_id="3.1").ring_id == "3.1"
    with pytest.raises(dataclasses.FrozenInstanceError):
        ring.ring_id = "3.2"  # type: ignore[misc]
    with pytest.raises(TypeError):
        Ring(TenantId(1), CallId("c1"))  # type: ignore[call-arg]
    cancel = CancelRing(TenantId(1), CallId("c1"), "201", CancelReason.TIMEOUT)
    assert (cancel.reason, cancel.ring_id) == (CancelReason.TIMEOUT, "")
    record = RingRecord(ExtensionId(3), 1.0, 16.0)
    assert (record.ring_id, record.number) == ("", "")


def test_quick_init_refuses_what_it_cannot_copy() -> None:
    @dataclasses.dataclass(frozen=True, slots=True)
    class WithFactory:
        tags: list[str] = dataclasses.field(default_factory=list)

    @dataclasses.dataclass(slots=True)
    class NotFrozen:
        name: str

    for cls in (WithFactory, NotFrozen):
        with pytest.raises(TypeError):
            quick_init(cls)
