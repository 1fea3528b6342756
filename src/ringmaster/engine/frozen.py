"""A quicker `__init__` for the frozen records made on every ring.

A frozen dataclass's generated `__init__` sets each field through
`object.__setattr__(self, name, value)`, a generic lookup by name per field:
about three times the cost of a plain class. The records and commands made for
every ring (`RingRecord`, `Ring`, `CancelRing`: a `ringall` call is 35 of them)
get an `__init__` that sets each slot through its own descriptor instead, which
costs about what an unfrozen class does. Everything else is the dataclass's own:
fields, signature, defaults, `__setattr__` refusing changes, equality, hash.
"""

from __future__ import annotations

import dataclasses
from typing import Any, TypeVar

T = TypeVar("T")


def quick_init(cls: type[T]) -> type[T]:
    """Give a frozen, slotted dataclass an `__init__` that sets its slots directly.

    Only for fields with no default or a plain default (no `default_factory`,
    no `InitVar`, no `__post_init__`), which is what it checks.
    """
    params = dataclasses.fields(cls)  # type: ignore[arg-type]
    frozen = cls.__dataclass_params__.frozen  # type: ignore[attr-defined]
    if not frozen or "__slots__" not in cls.__dict__ or hasattr(cls, "__post_init__"):
        raise TypeError(f"{cls.__name__}: not a frozen, slotted dataclass without __post_init__")
    scope: dict[str, Any] = {}
    signature, body = ["self"], []
    for index, field in enumerate(params):
        if not field.init or field.default_factory is not dataclasses.MISSING:
            raise TypeError(f"{cls.__name__}.{field.name}: not a plain field")
        scope[f"_set{index}"] = cls.__dict__[field.name].__set__
        if field.default is dataclasses.MISSING:
            signature.append(field.name)
        else:
            scope[f"_default{index}"] = field.default
            signature.append(f"{field.name}=_default{index}")
        body.append(f"    _set{index}(self, {field.name})")
    source = f"def __init__({', '.join(signature)}):\n" + ("\n".join(body) or "    pass")
    exec(source, scope)
    init = scope["__init__"]
    init.__qualname__ = f"{cls.__qualname__}.__init__"
    init.__annotations__ = {field.name: field.type for field in params} | {"return": None}
    type.__setattr__(cls, "__init__", init)
    return cls
