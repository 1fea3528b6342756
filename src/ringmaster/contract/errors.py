"""The contract's errors, limits and the text helpers both directions share."""

from __future__ import annotations

import json
import re
from typing import Any, Final

#: Inbound payloads larger than this are rejected unread (a PBX message is a
#: few hundred bytes; this guards the JSON parser, not the contract).
MAX_PAYLOAD_BYTES: Final = 64 * 1024
#: A JSON payload echoed on an error topic is kept whole below this size.
ECHO_MAX_CHARS: Final = 1024
#: A topic echoed on an error topic is cut beyond this length.
TOPIC_ECHO_MAX: Final = 256

_JSON_SEPARATORS: Final = (",", ":")
# A lone surrogate (U+D800..U+DFFF) is not a Unicode scalar value: UTF-8 cannot encode
# it, so neither SQLite, nor a UTF-8 payload, nor a UTF-8 log can take it. A strictly
# decoded UTF-8 payload holds one only through a JSON escape such as \udfff.
SURROGATE: Final = re.compile("[\ud800-\udfff]")
# C0 and C1 control characters and DEL: invisible in logs and the admin API, and a NUL
# ends a string for SQLite's own functions (`length`, the sqlite3 shell) and for C.
CONTROL: Final = re.compile("[\x00-\x1f\x7f-\x9f]")
UNPRINTABLE: Final = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff]")
#: The `error` of a message whose handling failed inside ringmaster, not for its content.
INTERNAL_ERROR: Final = "internal error: see ringmaster's log"
#: What `ContractError.reason` may be: a topic that is not an inbound one (or has no
#: valid tenant id), a payload too large to read, one that is not a JSON object in
#: UTF-8 (or holds text nothing downstream can take), a field the payload model
#: refuses, and a failure inside ringmaster.
REJECTION_REASONS: Final = ("topic", "too_large", "malformed", "invalid", "internal")


class ContractError(Exception):
    """An inbound message does not follow the contract; nothing in the engine changes.

    Attributes:
        tenant_id: The tenant read from the topic, or None when the topic has none.
        topic: The topic the message came on.
        error: A readable reason that names the field, e.g.
            ``priority: Input should be less than or equal to 9``.
        payload: What may safely be echoed of the payload: the JSON value itself when
            it is small, else a truncated string.
        reason: Which kind of refusal, one of a few words (`REJECTION_REASONS`), for
            counting without the unbounded text of `error`.
    """

    def __init__(
        self, tenant_id: int | None, topic: str, error: str, payload: Any, reason: str = "invalid"
    ) -> None:
        super().__init__(f"{topic}: {error}")
        self.tenant_id = tenant_id
        self.topic = topic
        self.error = error
        self.payload = payload
        self.reason = reason


def visible(text: str) -> str:
    r"""Text with control characters and lone surrogates written as escapes, e.g. \u0000."""
    return UNPRINTABLE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


def quoted(key: str) -> str:
    """A key as an error names it: quoted, cut short, control characters escaped."""
    return f'"{visible(key[:TOPIC_ECHO_MAX])}"'


def truncate(text: str) -> str:
    """`text` cut to `ECHO_MAX_CHARS`, with "..." when it was longer."""
    return text if len(text) <= ECHO_MAX_CHARS else text[:ECHO_MAX_CHARS] + "..."


# ensure_ascii=False: payloads are UTF-8 (contract), so names stay readable. One
# encoder for every message: json.dumps with any option builds a new one per call.
_ENCODER: Final = json.JSONEncoder(separators=_JSON_SEPARATORS, ensure_ascii=False)


def dumps(value: Any) -> str:
    """`value` as the contract's compact JSON."""
    return _ENCODER.encode(value)
