"""The hub's citizen JSON API as the kiosk uses it (standard library HTTP, in a thread)."""

from __future__ import annotations

import http.client
import json
import time
import urllib.error
import urllib.request
from typing import Any
from urllib.parse import quote

TIMEOUT = 5.0
RETRY_PAUSE = 0.3  # seconds before a repeated request
# Asking twice does no harm with these; a ticket (POST) is never taken twice.
REPEATABLE = {"GET", "DELETE"}


class HubUnreachable(Exception):
    """The hub did not answer (network error, timeout, 5xx)."""

    def __init__(self, reason: str, connection: bool = False) -> None:
        super().__init__(reason)
        self.connection = connection  # the connection failed (refused, reset), no timeout


class HubRefused(Exception):
    """The hub answered with a 4xx: the message is its reason."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status


class HubClient:
    """GET/POST/DELETE on the hub's reception API; every call blocks (run it in a thread)."""

    def __init__(self, base_url: str, timeout: float = TIMEOUT) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout

    def request(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        """The JSON answer; raises HubUnreachable or HubRefused.

        A repeatable request whose connection failed (a reset while the hub's proxy reloads,
        say) is made once more before the hub counts as unreachable: one lost connection
        must not put the kiosk out of service and end a citizen's visit.
        """
        try:
            return self._request(method, path, body)
        except HubUnreachable as exc:
            if method not in REPEATABLE or not exc.connection:
                raise
        time.sleep(RETRY_PAUSE)
        return self._request(method, path, body)

    def _request(self, method: str, path: str, body: dict[str, Any] | None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        headers = {"Accept": "application/json"}
        if data is not None:
            headers["Content-Type"] = "application/json"
        request = urllib.request.Request(
            self.base_url + path, data=data, method=method, headers=headers
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                return json.load(response)
        except urllib.error.HTTPError as exc:
            if exc.code >= 500:
                raise HubUnreachable(f"HTTP {exc.code}") from None
            try:
                answer = json.load(exc)
                reason = answer.get("error") or answer.get("message") or exc.reason
            except (ValueError, AttributeError):
                reason = exc.reason
            raise HubRefused(exc.code, str(reason)) from None
        except TimeoutError:
            raise HubUnreachable("the hub did not answer in time") from None
        except http.client.HTTPException as exc:  # a broken answer: the connection failed
            broken = f"a broken answer ({type(exc).__name__})"
            raise HubUnreachable(broken, connection=True) from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            timed_out = isinstance(reason, TimeoutError)
            raise HubUnreachable(str(reason), connection=not timed_out) from None
        except ValueError:
            raise HubUnreachable("the hub's answer is not JSON") from None

    def reception(self, language: str) -> dict[str, Any]:
        """Open or closed, waiting, estimate and categories (names in `language`)."""
        answer = self.request("GET", f"/api/v1/reception?lang={quote(language)}")
        if not isinstance(answer, dict):
            raise HubUnreachable("the reception answer is not an object")
        return answer

    def take_ticket(self, device: str, language: str, category: str, name: str) -> dict[str, Any]:
        """A new ticket from this kiosk (its device id is the ticket's source)."""
        answer = self.request(
            "POST",
            "/api/v1/reception/tickets",
            {
                "name": name,
                "category": category,
                "description": "",
                "consent": True,
                "language": language,
                "device": device,
            },
        )
        if not isinstance(answer, dict) or not isinstance(answer.get("token"), str):
            raise HubUnreachable("the ticket answer has no token")
        return answer

    def cancel_ticket(self, token: str) -> None:
        """Leave the queue."""
        self.request("DELETE", f"/api/v1/reception/tickets/{quote(token, safe='')}")

    def call_credentials(self, token: str) -> Any:
        """A seat in the call (once the ticket is being served)."""
        return self.request("POST", f"/api/v1/reception/tickets/{quote(token, safe='')}/call")
