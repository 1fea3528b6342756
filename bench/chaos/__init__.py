"""The fault-injection harness (issue 9): `python -m bench.chaos [--short|--long]`.

It starts its own mosquitto (with working persistence) and the daemon as a real
process, drives an independent PBX model against it, and meanwhile kills the
daemon with SIGKILL, restarts the broker and publishes a fuzz corpus on the
inbound topics. At the end it checks, from the PBX's side, the invariants the
product promises (every call one final state, no agent rung for two calls, no
ring for an ended call, no answer the PBX bridged refused, the daemon alive,
its memory bounded) and exits non-zero when one is broken.

Modules: `plan` (settings, seeded schedules, provisioning), `fuzz` (the
corpus), `link` (MQTT clients and the persistence probe), `pbx` (the PBX model
and what it saw), `verdict` (the invariants and the summary), `run` (the
processes and the faults). See docs/reliability.md.
"""
