"""Field types shared by the provisioning file and the admin API, so both say the same."""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, WithJsonSchema
from pydantic_core import PydanticCustomError

from ringmaster.engine.strategies import strategy_names


def _known_strategy(value: str) -> str:
    if value not in strategy_names():
        raise PydanticCustomError(
            "unknown_strategy",
            'Unknown strategy "{value}"; expected one of: {names}',
            {"value": value, "names": ", ".join(sorted(strategy_names()))},
        )
    return value


#: A queue's `strategy`: a name in the engine's registry.
StrategyName = Annotated[
    str,
    AfterValidator(_known_strategy),
    # The names come from the registry, not a Literal, so the schema gets its enum here.
    WithJsonSchema({"type": "string", "enum": sorted(strategy_names())}),
]
