"""How a queue option or an enrolment option is declared: once, on the engine's field.

`QueueConfig` and `EnrolmentOptions` (engine.model) are the declarations. Each option
is a dataclass field made by `option()`: its type is the field's annotation, its
default the field's default, and the `Option` in its metadata says the rest (bounds,
meaning, the Asterisk and FreeSWITCH counterparts). The admin API's request and
response schemas, provisioning's validation, the store's persistence and the table in
docs/options.md are all derived from these fields (`ringmaster.options`), so a new
option is one field here plus the engine code that uses it.

Plain data only: the engine stays free of pydantic and of every adapter.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

#: The longest any option in seconds may be: a day. Larger values are mistakes, and
#: bounding them keeps every value an SQLite integer.
MAX_SECONDS = 86_400
#: The longest ring an operator may set, in seconds (an hour is already absurd).
MAX_RING_TIMEOUT = 3600
MAX_PENALTY = 1000
MAX_COUNT = 1_000_000
MAX_WEIGHT = 1000
MAX_SKILL_LEVEL = 10
MAX_SKILLS = 50
MAX_RULES = 20

#: The key of `Option` in a dataclass field's metadata.
OPTION_KEY = "ringmaster.option"


@dataclass(frozen=True, slots=True)
class Option:
    """What a field's type and default do not say about an option.

    Attributes:
        doc: What it does, in one line of the docs' table (the API's description too).
        minimum: The least value of an integer option (or of each list item's bound).
        maximum: The greatest value of an integer option.
        default_doc: How the docs show the default, when the value alone does not
            say it ("0 (never)"); empty: the value itself.
        values_doc: How the docs show the values the API takes, when the type and
            bounds do not say it (a reference); empty: derived from them.
        asterisk: Asterisk's counterpart, for the docs' table. Empty: it has none; a
            remark alone in parentheses: none, with the remark ("(dialplan)").
        freeswitch: FreeSWITCH's (mod_callcenter) counterpart, written the same way.
        by_hand: True for a field that the adapters handle themselves because it is a
            reference or a key (a queue's `timeout` and `overflow`, an agent's
            `position`): it is in the docs' table, and nothing is derived from it.
    """

    doc: str
    minimum: int | None = None
    maximum: int | None = None
    default_doc: str = ""
    values_doc: str = ""
    asterisk: str = ""
    freeswitch: str = ""
    by_hand: bool = False


def option(
    default: Any = dataclasses.MISSING,
    *,
    doc: str,
    minimum: int | None = None,
    maximum: int | None = None,
    default_doc: str = "",
    values_doc: str = "",
    asterisk: str = "",
    freeswitch: str = "",
    by_hand: bool = False,
) -> Any:
    """A dataclass field that declares an option (see `Option` for the arguments).

    Returns:
        The `dataclasses.field`, typed `Any` as `field()` is, so that it can stand as
        the default of a field of any type.
    """
    meta = Option(doc, minimum, maximum, default_doc, values_doc, asterisk, freeswitch, by_hand)
    return dataclasses.field(default=default, metadata={OPTION_KEY: meta})


def declared(cls: type[Any]) -> list[tuple[dataclasses.Field[Any], Option]]:
    """Every field of a dataclass that declares an option, in declaration order."""
    return [
        (f, f.metadata[OPTION_KEY]) for f in dataclasses.fields(cls) if OPTION_KEY in f.metadata
    ]
