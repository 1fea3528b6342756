r"""The fuzz corpus: payloads no PBX should send, deterministic by seed.

Every payload is about calls and extensions that do not exist (call ids start
with `fz`, extensions are `fz...`, DIDs are unrouted), so a daemon that handles
them correctly answers each on an error topic and changes nothing the PBX
model's calls depend on. What they try: lone surrogate escapes (`"\udfff"`,
which JSON decodes but UTF-8, SQLite and logging cannot take) in every string
field and key, NUL, huge strings, deep nesting, wrong types, numbers JSON or
Python choke on, duplicate keys, non-UTF-8 bytes, non-objects, truncated JSON,
unknown topics and bad tenant segments.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Iterator
from typing import Any

from bench.chaos.plan import CALL_TENANTS, FUZZ_TENANT, UNROUTED_DID
from ringmaster.contract import INBOUND

#: Topic suffixes after `P/T/pbx/`: the inbound topics and a few that do not exist.
KINDS = tuple(INBOUND)
UNKNOWN_KINDS = ("call/unknown", "call", "call/arrived/extra", "agent", "x")

#: Tenant segments that are not a tenant id (every one is a legal topic level).
BAD_TENANTS = (
    "0",
    "-1",
    "01",
    "abc",
    "1.0",
    "1e3",
    " 1",
    "1 ",
    "\u0661",  # ARABIC-INDIC DIGIT ONE: int() accepts it, a tenant id must not
    "99999999999999999999999999",
    "",
    "\U0001f600",
    "77",  # a well-formed id of a tenant that does not exist
)

SURROGATES = ("\udfff", "\ud800", "\udc00x", "a\ud83d")
ODD_TEXT = (
    "\x00",
    "a\x00b",
    "\u2028\u2029",
    "\u202e\u0661\u0662",
    "e\u0301\u0301\u0301",
    "\U0001f4de" * 8,
    "\ufeff",
    "\\",
    '"',
)
WRONG_TYPES: tuple[Any, ...] = (
    None,
    0,
    -1,
    1.5,
    True,
    [],
    {},
    ["x"],
    {"a": 1},
    2**70,
    float("inf"),
)

_BASES: dict[str, Callable[[str, str], dict[str, Any]]] = {
    "call/arrived": lambda c, x: {
        "call_id": c,
        "did": UNROUTED_DID,
        "caller_id": "5550100",
        "caller_name": "Fuzz",
        "priority": 1,
    },
    "call/answered": lambda c, x: {"call_id": c, "extension": x},
    "call/ring_failed": lambda c, x: {"call_id": c, "extension": x, "reason": "busy"},
    "call/hangup": lambda c, x: {"call_id": c, "cause": "normal"},
    "call/callback_requested": lambda c, x: {"call_id": c, "number": "+15550100"},
    "agent/state": lambda c, x: {"extension": x, "state": "paused", "reason": "lunch"},
    "extension/state": lambda c, x: {"extension": x, "state": "in_use"},
}


def _dumps(value: Any) -> str:
    # ensure_ascii writes a lone surrogate as the escape "\udfff": valid JSON text
    # that decodes to a str UTF-8 cannot encode, exactly what a PBX might relay.
    return json.dumps(value, ensure_ascii=True, allow_nan=True)


def _nested(depth: int, rng: random.Random) -> str:
    if rng.random() < 0.5:
        return "[" * depth + "]" * depth
    return '{"a":' * depth + "1" + "}" * depth


def _string_fields(payload: dict[str, Any]) -> list[str]:
    return [k for k, v in payload.items() if isinstance(v, str)]


def _mutate(payload: dict[str, Any], rng: random.Random, call_id: str) -> str | bytes:  # noqa: PLR0911, PLR0912
    """One bad payload derived from a valid-looking one."""
    fields = _string_fields(payload)
    field = rng.choice(fields) if fields else "call_id"
    kind = rng.randrange(15)
    if kind == 0:  # a lone surrogate in one string field
        payload[field] = f"fz{rng.choice(SURROGATES)}p{rng.randrange(10)}"
        return _dumps(payload)
    if kind == 1:  # ... in every string field, and as a key
        for f in fields:
            payload[f] = payload[f] + rng.choice(SURROGATES)
        payload[rng.choice(SURROGATES)] = rng.choice(SURROGATES)
        return _dumps(payload)
    if kind == 2:  # NUL and other odd text
        payload[field] = f"fz{rng.choice(ODD_TEXT)}{rng.randrange(1000)}"
        return _dumps(payload)
    if kind == 3:  # a huge string
        # Rarely a megabyte: the weights bound the corpus's bytes (~30 MB per 10,000).
        size = rng.choices((300, 5_000, 65_536, 1_000_000), weights=(60, 30, 9.5, 0.5))[0]
        # JSON escapes make a character up to 12 bytes: `size` is the payload's size.
        char, width = rng.choice((("x", 1), ("\u00e9", 6), ("\U0001f4de", 12), ("\\", 2)))
        payload[field] = "fz" + char * (size // width)
        return _dumps(payload)
    if kind == 4:  # deep nesting, in a field or as the whole payload
        depth = rng.choices((100, 1_000, 10_000, 100_000), weights=(50, 30, 19, 1))[0]
        if rng.random() < 0.5:
            return _nested(depth, rng)
        body = _dumps(payload)
        return body[:-1] + f', "deep": {_nested(depth, rng)}}}'
    if kind == 5:  # a wrong type
        payload[field] = rng.choice(WRONG_TYPES)
        return _dumps(payload)
    if kind == 6:  # numbers JSON has no (NaN, Infinity) or Python refuses (4,300+ digits)
        number = rng.choice(("NaN", "Infinity", "-Infinity", "1e999", "9" * 5000, "-0", "1E400"))
        key = "priority" if "priority" in payload else field
        body = _dumps({k: v for k, v in payload.items() if k != key})
        return body[:-1] + f', "{key}": {number}}}'
    if kind == 7:  # duplicate keys: valid then bad, or bad then valid
        body = _dumps(payload)
        bad = _dumps(rng.choice((*WRONG_TYPES[:6], "fz\udfff", "")))
        dup = f'"{field}": {bad}'
        return body[:-1] + ", " + dup + "}" if rng.random() < 0.5 else "{" + dup + ", " + body[1:]
    if kind == 8:  # not UTF-8
        raw = _dumps(payload).encode()
        junk = rng.choice((b"\xff", b"\xc3\x28", b"\xed\xa0\x80", b"\xf8\x88\x80\x80\x80", b"\x80"))
        cut = rng.randrange(len(raw))
        return raw[:cut] + junk + raw[cut:]
    if kind == 9:  # not a JSON object
        return rng.choice(("[]", '"x"', "1", "null", "true", "", "[{}]", '["call_id"]'))
    if kind == 10:  # truncated, or trailing garbage, or a BOM
        body = _dumps(payload)
        return rng.choice((body[: rng.randrange(1, len(body))], body + " x", "\ufeff" + body))
    if kind == 11:  # a required field missing
        payload.pop(field, None)
        return _dumps(payload)
    if kind == 12:  # unknown extra fields that are themselves bad
        payload["x" * rng.randrange(1, 300)] = rng.choice((*SURROGATES, *ODD_TEXT, [[[]]]))
        return _dumps(payload)
    if kind == 13:  # a valid shape, out-of-range values
        payload.update(
            rng.choice(
                (
                    {"priority": 10},
                    {"priority": -1},
                    {"state": "AVAILABLE"},
                    {"reason": "exploded"},
                    {"did": "123abc"},
                    {"extension": "x" * 21},
                    {"call_id": "fz" + "x" * 63},
                    {"skills": {"Bad Skill": 11}},
                )
            )
        )
        return _dumps(payload)
    # surrogates everywhere and a deep value at once
    payload = {k: (v + "\udfff" if isinstance(v, str) else v) for k, v in payload.items()}
    payload["call_id"] = call_id + "\udfff"
    return _dumps(payload)[:-1] + f', "n": {_nested(50, rng)}}}'


def corpus(seed: int, prefix: str, count: int) -> Iterator[tuple[str, bytes]]:
    """`count` (topic, payload) pairs, the same for the same seed."""
    rng = random.Random(f"{seed}:fuzz")
    for i in range(count):
        call_id = f"fz{seed}-{i}"
        extension = f"fz{i % 9973}"
        roll = rng.random()
        if roll < 0.08:
            tenant = rng.choice(BAD_TENANTS)
        elif roll < 0.5:
            tenant = str(FUZZ_TENANT)
        else:
            # The call tenants too: bad input must not disturb their calls.
            tenant = str(rng.choice(CALL_TENANTS))
        kind = rng.choice(KINDS) if rng.random() > 0.03 else rng.choice(UNKNOWN_KINDS)
        base = _BASES.get(kind, _BASES["call/hangup"])(call_id, extension)
        body = _mutate(base, rng, call_id)
        payload = body if isinstance(body, bytes) else body.encode("utf-8", "surrogatepass")
        yield f"{prefix}/{tenant}/pbx/{kind}", payload
