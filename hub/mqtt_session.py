"""How the hub's broker clients (the bridge and the dynamic-security admin) begin and end
a session: log in (user name, TLS), leave a retained last will, connect in the background
with paho's reconnect backoff; at the end, say "offline" in the same retained topic before
disconnecting, so that nobody waits for the will. The devices have their own link
(`edge.link`), which the hub never imports.
"""

from __future__ import annotations

import logging
import ssl

import paho.mqtt.client as mqtt

from protocol.broker import BrokerAddress

log = logging.getLogger(__name__)
OFFLINE_WAIT = 2.0  # seconds to wait for the broker to take the offline state


def open_session(
    client: mqtt.Client,
    broker: BrokerAddress,
    *,
    will: tuple[str, bytes] | None,
    keepalive: int,
    reconnect: tuple[int, int],
    ca_file: str | None = None,
) -> None:
    """Connect `client` in the background, with `will` (topic, payload) retained at QoS 1."""
    if broker.username:
        client.username_pw_set(broker.username, broker.password)
    if broker.tls:
        client.tls_set(ca_certs=ca_file, cert_reqs=ssl.CERT_REQUIRED)
    if will is not None:
        client.will_set(will[0], will[1], qos=1, retain=True)
    client.reconnect_delay_set(min_delay=reconnect[0], max_delay=reconnect[1])
    client.connect_async(broker.host, broker.port, keepalive=keepalive)
    client.loop_start()


def close_session(client: mqtt.Client, offline: tuple[str, bytes] | None) -> None:
    """Publish `offline` (topic, payload) retained if connected, then disconnect and stop."""
    if offline is not None and client.is_connected():
        topic, payload = offline
        info = client.publish(topic, payload, qos=1, retain=True)
        try:
            info.wait_for_publish(timeout=OFFLINE_WAIT)
        except (RuntimeError, ValueError):
            log.warning("could not publish the offline state to %s", topic)
    client.disconnect()
    client.loop_stop()
