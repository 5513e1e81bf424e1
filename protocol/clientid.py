"""A device's MQTT client id: one rule for the hub, which binds it to the device's broker
login (so no other login can take over the device's session or fire its last will), and
for the device, which connects with it."""

from __future__ import annotations

from protocol.topics import check_slug


def device_client_id(site: str, device: str) -> str:
    """The only client id the broker accepts for this device's login.

    Slugs never hold a '.', so no two devices share one, not even across the sites that
    share a broker.
    """
    return f"empfang.{check_slug(site, 'site')}.{check_slug(device, 'device')}"
