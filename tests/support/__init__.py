"""Helpers that start real parts (Mosquitto, a hub server, MQTT watchers) for tests."""
