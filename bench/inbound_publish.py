"""``python -m bench.inbound_publish [--rounds R] [--packets N]``: reading a PUBLISH, paho vs lean.

What `lean_publishes` saves per received message, the handler alone.

One received MQTT 5 PUBLISH (QoS 1, no properties, a ~100-byte JSON payload on a
daemon-like topic), handed to paho's `_handle_publish` as `_packet_read` would, on two
clients set up as the daemon's (manual acks, a logger that does not hear debug lines,
an `on_message` that keeps nothing): paho's own handler, and `lean_publishes`'. Rounds
alternate A/B, B/A... in one process so that the machine's noise falls on each alike.
Prints one JSON document: the machine, microseconds per packet (best and median round)
and the ratio lean/paho of the medians.
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import time

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from bench.common import machine
from ringmaster.daemon.mqtt_connection import lean_publishes

TOPIC = b"rm/1/pbx/call/arrived"
PAYLOAD = b'{"call": "c-000123", "queue": "sales", "caller": "+441234567890", "at": 1764680000}'


def receiver(*, lean: bool) -> paho.Client:
    """A client that has just read one PUBLISH, its handler ready to run."""
    client = paho.Client(CallbackAPIVersion.VERSION2, protocol=paho.MQTTv5)
    logger = logging.getLogger("bench.paho")
    logger.setLevel(logging.INFO)
    client.enable_logger(logger)
    client.manual_ack_set(True)
    client.on_message = lambda _client, _userdata, _message: None
    if lean:
        lean_publishes(client)
    client._in_packet["command"] = 0x32  # PUBLISH, QoS 1
    client._in_packet["packet"] = bytearray(
        len(TOPIC).to_bytes(2, "big") + TOPIC + b"\x01\x2a" + b"\x00" + PAYLOAD
    )
    return client


def per_packet_us(client: paho.Client, packets: int) -> float:
    """Microseconds per run of the client's PUBLISH handler, over `packets` runs."""
    handle = client._handle_publish
    start = time.perf_counter()
    for _ in range(packets):
        handle()
    return (time.perf_counter() - start) / packets * 1e6


def main() -> None:
    """Run the rounds and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--packets", type=int, default=20_000)
    args = parser.parse_args()
    sides = {"paho": receiver(lean=False), "lean": receiver(lean=True)}
    times: dict[str, list[float]] = {side: [] for side in sides}
    for round_ in range(args.rounds):
        order = list(sides) if round_ % 2 == 0 else list(reversed(sides))
        for side in order:
            times[side].append(per_packet_us(sides[side], args.packets))
    figures = {
        side: {"best_us": round(min(t), 2), "median_us": round(statistics.median(t), 2)}
        for side, t in times.items()
    }
    ratio = figures["lean"]["median_us"] / figures["paho"]["median_us"]
    print(
        json.dumps(
            {
                "machine": machine(),
                "rounds": args.rounds,
                "packets": args.packets,
                "per_packet": figures,
                "lean_over_paho": round(ratio, 3),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
