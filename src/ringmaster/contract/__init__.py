r"""The MQTT wire contract, version 1: payloads <-> engine events and commands.

This package is pure: no I/O and no broker. It turns an inbound MQTT message
(topic and payload bytes) into one of the engine's `PbxEvent`s, and renders each
engine `Command` as the `OutboxMessage` the contract prescribes
(`/work/shared/contract/mqtt-v1.md`; the project's own words are in docs/).

Topics are built from the prefix `P` (setting `mqtt.topic_prefix`) and the
tenant id `T`: the PBX publishes on `P/T/pbx/...`, ringmaster on `P/T/cmd/...`,
`P/T/event/...`, `P/T/state/queue/Q`, `P/T/error` and `P/status`.

Time format: every payload ringmaster publishes carries `at`, the moment it
happened, as ISO 8601 in UTC with milliseconds and a `Z` suffix, e.g.
`2026-11-25T09:31:17.123Z` (sub-millisecond digits are truncated).

Additions to the contract (it may be extended by adding, never by changing):

- Commands (`cmd/*`) carry `at` too, the time ringmaster decided them.
- `event/agent/state` carries `reason` (the PBX's pause reason, or "").
- `P/T/error` carries `at`; the offending payload is echoed under `payload`.
- Rejected as well (docs/mqtt.md, "Errors"): a payload with a duplicate key,
  `NaN`, `Infinity` or a number out of range; a string, key or value at any
  depth, that is not Unicode text (a lone surrogate escape such as `\udfff`);
  a control character in `call_id` or `extension`. Control characters in
  display text are replaced by spaces.
- `P/error` (no tenant) reports a message whose topic has no readable tenant
  id, since such a message cannot be attributed to a `P/T/error` topic.
- The MQTT last will on `P/status` is `{"state": "offline"}` without `at`: the
  broker sends it at a time ringmaster cannot know when it registers it.
- `pbx/call/arrived` takes optional `skills` the call requires; the PBX may
  publish `pbx/call/callback_requested`.
- Commands `cmd/announce`, `cmd/originate` and `cmd/agent_state` (a
  supervisor's presence request); events `event/call/overflowed` and
  `event/call/callback_requested`; the queue snapshot's service-level,
  overflow and callback figures; the overflow and hangup reason `supervisor`.

The package's modules: `errors` (the refusal, limits, shared text helpers),
`inbound` (the PBX's payload models and `parse_inbound`) and `outbound`
(`render` and the error, status and will messages).
"""

from ringmaster.contract.errors import (
    INTERNAL_ERROR,
    MAX_PAYLOAD_BYTES,
    REJECTION_REASONS,
    ContractError,
)
from ringmaster.contract.inbound import (
    INBOUND,
    inbound_filters,
    parse_inbound,
    parse_tenant,
)
from ringmaster.contract.outbound import (
    OutboxMessage,
    format_time,
    internal_error,
    is_monitoring,
    render,
    render_error,
    render_internal_error,
    status_message,
    status_topic,
    will_payload,
)

__all__ = [
    "INBOUND",
    "INTERNAL_ERROR",
    "MAX_PAYLOAD_BYTES",
    "REJECTION_REASONS",
    "ContractError",
    "OutboxMessage",
    "format_time",
    "inbound_filters",
    "internal_error",
    "is_monitoring",
    "parse_inbound",
    "parse_tenant",
    "render",
    "render_error",
    "render_internal_error",
    "status_message",
    "status_topic",
    "will_payload",
]
