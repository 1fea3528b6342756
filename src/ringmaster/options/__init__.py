"""Everything derived from the option declarations of `QueueConfig` and `EnrolmentOptions`.

An option is declared once, as a field of the engine's dataclass (engine.options). From
that field this module derives what each adapter needs:

- the admin API's request fields (create and patch) and response fields, and
  provisioning's entry fields, all with the declared bounds and description;
- the conversion between a request's value and the engine's (`AgentCondition` sets,
  rule tuples) and between the engine's and plain JSON, which the API's responses and
  the store's JSON column use, validated on the way back in by the same request type;
- the option tables of docs/options.md (``python -m ringmaster.options docs/options.md``
  writes them; a test fails when they are stale).

Fields declared `by_hand` (a queue's `timeout` and `overflow`, an agent's `position`)
appear in the docs' tables only: each adapter handles them itself.
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, TypeVar

from pydantic import MISSING, BaseModel, Field, TypeAdapter, ValidationError, create_model
from pydantic.fields import FieldInfo

from ringmaster.engine.model import (
    AgentCondition,
    EnrolmentOptions,
    PenaltyRule,
    QueueConfig,
    SkillRule,
)
from ringmaster.engine.options import MAX_RULES, Option, declared
from ringmaster.options.fields import (
    ConditionName,
    ConditionSet,
    PenaltyRuleField,
    PenaltyRules,
    SkillRuleField,
    SkillRules,
)

ModelT = TypeVar("ModelT", bound=BaseModel)


@dataclass(frozen=True, slots=True)
class _Kind:
    """How one engine type is asked for, answered with, stored and documented."""

    #: The request's type, before the declared bounds (`Annotated[int, Field(...)]`).
    request: Callable[[Option], Any]
    #: The response's type: what is stored, unconstrained.
    response: Any
    #: A validated request value (or stored value) -> the engine's.
    to_engine: Callable[[Any], Any]
    #: The engine's value -> plain JSON (the response's and the store's form).
    to_plain: Callable[[Any], Any]
    #: The values the API and provisioning take, for the docs' table.
    values: Callable[[Option], str]


def _same(value: Any) -> Any:
    return value


def _bounded_int(option: Option) -> Any:
    return Annotated[int, Field(ge=option.minimum, le=option.maximum)]


def _conditions_plain(value: frozenset[AgentCondition]) -> list[str]:
    # In the enum's order, so that a read is stable whatever order the request gave.
    return [c.value for c in AgentCondition if c in value]


def _range(option: Option) -> str:
    return f"{option.minimum}..{option.maximum}"


def _rules_kind(rule: type[Any], field_type: Any, model: type[BaseModel]) -> _Kind:
    fields = ", ".join(f'"{f.name}"' for f in dataclasses.fields(rule))
    return _Kind(
        request=lambda _: field_type,
        response=list[model],  # type: ignore[valid-type]
        to_engine=lambda value: tuple(
            rule(**(r.model_dump() if isinstance(r, BaseModel) else r)) for r in value
        ),
        to_plain=lambda value: [dataclasses.asdict(r) for r in value],
        values=lambda _: f"up to {MAX_RULES} `{{{fields}}}`, `after` increasing",
    )


_KINDS: dict[Any, _Kind] = {
    int: _Kind(_bounded_int, int, _same, _same, _range),
    bool: _Kind(lambda _: bool, bool, _same, _same, lambda _: "`true`, `false`"),
    int | None: _Kind(
        lambda o: _bounded_int(o) | None,
        int | None,
        _same,
        _same,
        lambda o: f"{_range(o)}, `null`",
    ),
    frozenset[AgentCondition]: _Kind(
        lambda _: ConditionSet,
        list[ConditionName],
        lambda value: frozenset(AgentCondition(c) for c in value),
        _conditions_plain,
        lambda _: "a list of conditions, each once",
    ),
    tuple[PenaltyRule, ...]: _rules_kind(PenaltyRule, PenaltyRules, PenaltyRuleField),
    tuple[SkillRule, ...]: _rules_kind(SkillRule, SkillRules, SkillRuleField),
}


@dataclass(frozen=True, slots=True)
class Declared:
    """One declared option, with what the adapters derive from it."""

    name: str
    default: Any
    option: Option
    kind: _Kind

    @property
    def request_type(self) -> Any:
        """The request's (and provisioning's) type, with the declared bounds."""
        return self.kind.request(self.option)

    def to_engine(self, value: Any) -> Any:
        """A validated request value -> the engine's."""
        return self.kind.to_engine(value)

    def to_plain(self, value: Any) -> Any:
        """The engine's value -> plain JSON."""
        return self.kind.to_plain(value)


def _declare(cls: type[Any]) -> tuple[Declared, ...]:
    hints = typing.get_type_hints(cls)
    options = []
    for field, option in declared(cls):
        if option.by_hand:
            continue
        kind = _KINDS.get(hints[field.name])
        # A new option of a type not above needs a `_Kind`: fail at import, not at a request.
        assert kind is not None, f"{cls.__name__}.{field.name}: no kind for {hints[field.name]}"
        options.append(Declared(field.name, field.default, option, kind))
    return tuple(options)


#: The queue options the adapters derive (not `timeout` and `overflow`: by hand).
QUEUE_OPTIONS = _declare(QueueConfig)
#: The enrolment options the adapters derive (not `position`: by hand).
ENROLMENT_OPTIONS = _declare(EnrolmentOptions)


# --- pydantic models ------------------------------------------------------------------------


def request_fields(options: Iterable[Declared], *, patch: bool) -> dict[str, Any]:
    """`create_model` fields for a create (defaults) or a patch (MISSING: left as is)."""
    fields: dict[str, Any] = {}
    for o in options:
        if patch:
            fields[o.name] = (o.request_type | MISSING, FieldInfo(default=MISSING))
        else:
            default = o.to_plain(o.default)
            fields[o.name] = (o.request_type, FieldInfo(default=default, description=o.option.doc))
    return fields


def response_fields(options: Iterable[Declared]) -> dict[str, Any]:
    """`create_model` fields for a response: the stored values, without bounds."""
    return {o.name: (o.kind.response, FieldInfo(description=o.option.doc)) for o in options}


def options_model(
    base: type[ModelT], options: Iterable[Declared], *, patch: bool = False
) -> type[ModelT]:
    """A request model: `base`'s fields (hand-declared) then a field for each option.

    Its name is `base`'s without a trailing ``Fields``, and it keeps `base`'s docstring.
    """
    fields = request_fields(options, patch=patch)
    return _model(base, fields)


def response_model(base: type[ModelT], options: Iterable[Declared]) -> type[ModelT]:
    """A response model: `base`'s fields then each option's stored value."""
    return _model(base, response_fields(options))


def _model(base: type[ModelT], fields: dict[str, Any]) -> type[ModelT]:
    name = base.__name__.removeprefix("_").removesuffix("Fields")
    model = create_model(name, __base__=base, __doc__=base.__doc__, **fields)
    model.__module__ = base.__module__
    return model


def engine_values(options: Iterable[Declared], model: BaseModel) -> dict[str, Any]:
    """The options a validated request gives (a patch's MISSING left out), engine-typed."""
    return {
        o.name: o.to_engine(value)
        for o in options
        if (value := getattr(model, o.name)) is not MISSING
    }


def plain_values(options: Iterable[Declared], config: Any) -> dict[str, Any]:
    """The options of a `QueueConfig` or `EnrolmentOptions`, as plain JSON."""
    return {o.name: o.to_plain(getattr(config, o.name)) for o in options}


class OptionError(ValueError):
    """A stored option is unknown or its value is not what its declaration allows."""


# By declaration, not by name: queues and enrolments both have a `wrapup_time`.
_ADAPTERS: dict[Declared, TypeAdapter[Any]] = {}


def _adapter(o: Declared) -> TypeAdapter[Any]:
    if o not in _ADAPTERS:
        _ADAPTERS[o] = TypeAdapter(o.request_type)
    return _ADAPTERS[o]


def from_plain(options: tuple[Declared, ...], data: Mapping[str, Any]) -> dict[str, Any]:
    """Stored options (plain JSON) -> engine values, checked by their declarations.

    A missing option gets its default, so that declaring a new one needs no migration.

    Raises:
        OptionError: Naming the first unknown option or bad value.
    """
    by_name = {o.name: o for o in options}
    unknown = sorted(set(data) - set(by_name))
    if unknown:
        raise OptionError(f"unknown option {unknown[0]!r}")
    values = {}
    for name, value in data.items():
        o = by_name[name]
        try:
            checked = _adapter(o).validate_python(value, strict=True)
        except ValidationError as error:
            reason = error.errors()[0]["msg"]
            raise OptionError(f"{name}: {reason} (stored: {value!r})") from None
        values[name] = o.to_engine(checked)
    return values


# --- docs/options.md ---------------------------------------------------------------------------

_TABLE_HEAD = (
    "| option | values | default | what it does | Asterisk | FreeSWITCH |\n"
    "|---|---|---|---|---|---|\n"
)
#: Each generated table sits between these two lines in docs/options.md.
_MARKS = {
    QueueConfig: ("<!-- queue options: generated from QueueConfig -->", "<!-- end -->"),
    EnrolmentOptions: (
        "<!-- enrolment options: generated from EnrolmentOptions -->",
        "<!-- end -->",
    ),
}


def _default_doc(field: dataclasses.Field[Any], option: Option) -> str:
    if option.default_doc:
        return option.default_doc
    value = field.default
    return "null" if value is None else str(value).lower()


def _counterpart(text: str) -> str:
    none = "\N{EN DASH}"
    return none if not text else f"{none} {text}" if text.startswith("(") else text


def _values_doc(cls: type[Any], field: dataclasses.Field[Any], option: Option) -> str:
    if option.values_doc:
        return option.values_doc
    return _KINDS[typing.get_type_hints(cls)[field.name]].values(option)


def options_table(cls: type[Any]) -> str:
    """The markdown table of a dataclass's declared options, `by_hand` ones included."""
    rows = [
        f"| `{f.name}` | {_values_doc(cls, f, o)} | {_default_doc(f, o)} | {o.doc}"
        f" | {_counterpart(o.asterisk)} | {_counterpart(o.freeswitch)} |\n"
        for f, o in declared(cls)
    ]
    return _TABLE_HEAD + "".join(rows)


def render_docs(text: str) -> str:
    """docs/options.md with its generated tables brought up to date."""
    for cls, (start, end) in _MARKS.items():
        head, found, rest = text.partition(start + "\n")
        if not found:
            raise ValueError(f"docs: no line {start!r}")
        _, found, tail = rest.partition(end)
        if not found:
            raise ValueError(f"docs: no {end!r} after {start!r}")
        text = head + start + "\n" + options_table(cls) + end + tail
    return text


def main(argv: list[str]) -> int:
    """``python -m ringmaster.options [--check] docs/options.md``: write (or check) the tables."""
    check = "--check" in argv
    paths = [Path(a) for a in argv if a != "--check"]
    stale = []
    for path in paths:
        text = path.read_text(encoding="utf-8")
        fresh = render_docs(text)
        if fresh != text:
            stale.append(path)
            if not check:
                path.write_text(fresh, encoding="utf-8")
    for path in stale:
        print(f"{path}: {'stale' if check else 'rewritten'}")
    return 1 if check and stale else 0
