"""A device's MQTT client id, and the enrollment answer that names it."""

from __future__ import annotations

from typing import Any

import pytest

from edge.enrollment import EnrollError, _checked
from protocol import TopicError
from protocol.clientid import device_client_id


def answer(**broker: object) -> dict[str, Any]:
    """An enrollment answer as the hub sends it, with `broker` fields replaced."""
    login = {"host": "h", "port": 1883, "tls": False, "username": "u", "password": "p"}
    return {"device": "tuer-2", "site": "a", "broker": {**login, **broker}, "ca_cert": ""}


def test_client_ids_differ_across_sites_and_refuse_non_slugs() -> None:
    assert device_client_id("rathaus", "tuer-2") == "empfang.rathaus.tuer-2"
    # '-' may be in a slug, '.' never: these two would collide with '-' as the separator.
    assert device_client_id("a-b", "c") != device_client_id("a", "b-c")
    for site, device in (("Rathaus", "tuer"), ("a.b", "c"), ("a", "#"), ("a", "")):
        with pytest.raises(TopicError):
            device_client_id(site, device)


def test_the_enrollment_answer_must_name_the_devices_own_client_id() -> None:
    assert _checked(answer(client_id="empfang.a.tuer-2"))["device"] == "tuer-2"
    assert _checked(answer())["site"] == "a"  # a hub that does not bind client ids yet
    for other in ("empfang-display-tuer-2", "empfang.b.tuer-2", 7):
        with pytest.raises(EnrollError, match="client id"):
            _checked(answer(client_id=other))
