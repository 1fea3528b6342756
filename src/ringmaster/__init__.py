"""Ringmaster: an automatic call distributor (ACD) daemon speaking MQTT to a PBX."""

__version__ = "0.1.0"
