"""A QoS 0 publish never takes the packet identifier of a QoS 1 message awaiting PUBACK."""

from __future__ import annotations

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from ringmaster.daemon.mqtt_connection import skip_mids_in_flight


def _client() -> paho.Client:
    return paho.Client(CallbackAPIVersion.VERSION2, protocol=paho.MQTTv5)


def test_the_identifiers_of_messages_in_flight_are_skipped() -> None:
    client = _client()
    client._last_mid = 41
    for mid in (42, 43):
        client._out_messages[mid] = paho.MQTTMessage(mid)
    skip_mids_in_flight(client)
    # paho's next draw, the QoS 0 message's, is free: its write cannot confirm 42 or 43.
    assert client._mid_generate() == 44


def test_the_skip_wraps_past_65535_as_paho_does() -> None:
    client = _client()
    client._last_mid = 65535
    client._out_messages[1] = paho.MQTTMessage(1)
    skip_mids_in_flight(client)
    assert client._mid_generate() == 2


def test_a_free_identifier_is_not_skipped() -> None:
    client = _client()
    client._last_mid = 7
    client._out_messages[9] = paho.MQTTMessage(9)
    skip_mids_in_flight(client)
    assert client._mid_generate() == 8
