"""The OpenAPI 3.1 description of the hub's JSON API."""

from __future__ import annotations

from typing import Any

_SLUG = {"type": "string", "pattern": "^[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?$"}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _errors(*codes: int) -> dict[str, Any]:
    text = {
        400: "Invalid input; `field` names the offending field",
        401: "Login required",
        403: "Admins only",
        404: "No such room",
        409: "Conflicts with what exists",
    }
    return {str(code): _json(_ref("Error"), text[code]) for code in codes}


def _slug_param() -> list[dict[str, Any]]:
    return [{"name": "slug", "in": "path", "required": True, "schema": _SLUG}]


def _token_param() -> list[dict[str, Any]]:
    return [{"name": "token", "in": "path", "required": True, "schema": {"type": "string"}}]


def _state_change(summary: str, body: dict[str, Any] | None, admin: bool) -> dict[str, Any]:
    op: dict[str, Any] = {
        "summary": summary,
        "parameters": _slug_param(),
        "security": [{"session": [], "csrf": []}],
        "responses": {
            "200": _json(_ref("RoomStatus"), "The room's status after the change"),
            **_errors(400, 401, 404, 409, *((403,) if admin else ())),
        },
    }
    if body is not None:
        op["requestBody"] = {"required": True, "content": {"application/json": {"schema": body}}}
    return op


def _bool_body(name: str) -> dict[str, Any]:
    return {"type": "object", "required": [name], "properties": {name: {"type": "boolean"}}}


def openapi_document(version: str) -> dict[str, Any]:
    """Build the document; every route under /api/v1 is described here."""
    room_input = {
        "type": "object",
        "properties": {
            "name": {"type": "string", "maxLength": 200},
            "kind": {"enum": ["reception", "consultation", "meeting"]},
            "policy": {"enum": ["open", "knock", "private"]},
            "department": {"oneOf": [_SLUG, {"type": "null"}]},
            "enabled": {"type": "boolean"},
            "opening_hours": _ref("OpeningHours"),
        },
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "empfang hub API",
            "version": version,
            "license": {"name": "EUPL-1.2", "identifier": "EUPL-1.2"},
            "description": (
                "Rooms and their live status. Reading is public (states and counts only, "
                "never personal data). State changes need a staff session cookie and the "
                "CSRF token from /api/v1/session in the X-CSRFToken header."
            ),
        },
        "servers": [{"url": "/api/v1"}],
        "paths": {
            "/openapi.json": {
                "get": {
                    "summary": "This document",
                    "responses": {"200": {"description": "The OpenAPI document"}},
                }
            },
            "/session": {
                "get": {
                    "summary": "The logged-in staff member and a CSRF token",
                    "responses": {"200": _json(_ref("Session"), "Session information")},
                }
            },
            "/rooms": {
                "get": {
                    "summary": "List every room with its status",
                    "responses": {
                        "200": _json(
                            {
                                "type": "object",
                                "properties": {"rooms": {"type": "array", "items": _ref("Room")}},
                            },
                            "All rooms",
                        )
                    },
                },
                "post": {
                    "summary": "Create a room (admins)",
                    "security": [{"session": [], "csrf": []}],
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {
                                "schema": {
                                    "allOf": [
                                        room_input,
                                        {
                                            "type": "object",
                                            "required": ["slug", "name"],
                                            "properties": {"slug": _SLUG},
                                        },
                                    ]
                                }
                            }
                        },
                    },
                    "responses": {
                        "201": _json(_ref("Room"), "The new room"),
                        **_errors(400, 401, 403, 409),
                    },
                },
            },
            "/rooms/{slug}": {
                "get": {
                    "summary": "One room with its status",
                    "parameters": _slug_param(),
                    "responses": {"200": _json(_ref("Room"), "The room"), **_errors(404)},
                },
                "patch": {
                    "summary": "Change a room's settings (admins); omitted fields stay",
                    "parameters": _slug_param(),
                    "security": [{"session": [], "csrf": []}],
                    "requestBody": {
                        "required": True,
                        "content": {"application/json": {"schema": room_input}},
                    },
                    "responses": {
                        "200": _json(_ref("Room"), "The changed room"),
                        **_errors(400, 401, 403, 404),
                    },
                },
                "delete": {
                    "summary": "Delete a room (admins)",
                    "parameters": _slug_param(),
                    "security": [{"session": [], "csrf": []}],
                    "responses": {"204": {"description": "Deleted"}, **_errors(401, 403, 404, 409)},
                },
            },
            "/rooms/{slug}/checkin": {
                "post": _state_change("Check the caller in to the room", None, admin=False)
            },
            "/rooms/{slug}/checkout": {
                "post": _state_change("Check the caller out of the room", None, admin=False)
            },
            "/rooms/{slug}/dnd": {
                "put": _state_change("Set or clear do-not-disturb", _bool_body("dnd"), admin=False)
            },
            "/rooms/{slug}/enabled": {
                "put": _state_change(
                    "Switch a room on or off (admins)", _bool_body("enabled"), admin=True
                )
            },
            "/reception": {
                "get": {
                    "summary": "Reception open or closed, people waiting, estimate, categories",
                    "responses": {"200": _json(_ref("ReceptionInfo"), "The reception's state")},
                }
            },
            "/reception/tickets": {
                "post": {
                    "summary": "Take a ticket (citizen, web app or kiosk); keep the token secret",
                    "description": (
                        "Needs Content-Type application/json (no CSRF token: a cross-site "
                        "form cannot send JSON). `device` marks a kiosk as the ticket's source. "
                        "Rate-limited per address."
                    ),
                    "requestBody": {
                        "required": True,
                        "content": {"application/json": {"schema": _ref("NewTicket")}},
                    },
                    "responses": {
                        "201": _json(
                            {
                                "allOf": [
                                    _ref("TicketView"),
                                    {"type": "object", "properties": {"token": {"type": "string"}}},
                                ]
                            },
                            "The ticket and its token",
                        ),
                        **_errors(400, 409),
                        "429": _json(_ref("Error"), "Too many tickets from this address"),
                    },
                }
            },
            "/reception/tickets/{token}": {
                "get": {
                    "summary": "The ticket's status, position, estimate and messages",
                    "parameters": _token_param(),
                    "responses": {"200": _json(_ref("TicketView"), "The ticket"), **_errors(404)},
                },
                "delete": {
                    "summary": "Leave the queue",
                    "parameters": _token_param(),
                    "responses": {
                        "200": _json(_ref("TicketView"), "The ended ticket"),
                        **_errors(404),
                    },
                },
            },
            "/reception/tickets/{token}/call": {
                "post": {
                    "summary": "Call credentials for an admitted ticket (kiosks and apps)",
                    "description": (
                        "Answers the participant id, its secret key, the live channel path "
                        "(WebSocket /call/{participant}/live?k=KEY: messages `state`, `signal`, "
                        "`ended`; send `signal`, `chat`, `ping`, `leave`) and STUN/TURN "
                        "servers with time-limited credentials."
                    ),
                    "parameters": _token_param(),
                    "responses": {
                        "201": {"description": "participant, key, live, ice_servers"},
                        **_errors(404, 409),
                    },
                }
            },
            "/reception/tickets/{token}/live": {
                "get": {
                    "summary": "WebSocket: a JSON message of type `ticket` (a TicketView) on "
                    "every change; read-only, anything sent gets a message of type `error`",
                    "parameters": _token_param(),
                    "responses": {"101": {"description": "Switching to WebSocket"}, **_errors(404)},
                }
            },
            "/queue": {
                "get": {
                    "summary": "Waiting and served tickets of the caller's queues (staff)",
                    "security": [{"session": []}],
                    "responses": {
                        "200": {"description": "Lists `waiting` and `serving`"},
                        **_errors(401),
                    },
                }
            },
            "/queue/{public_id}/{action}": {
                "post": {
                    "summary": "Staff action on a ticket: admit {room}, forward {department | "
                    "colleague, note}, return, end {outcome}, message {text}",
                    "security": [{"session": [], "csrf": []}],
                    "parameters": [
                        {
                            "name": "public_id",
                            "in": "path",
                            "required": True,
                            "schema": {"type": "string"},
                        },
                        {
                            "name": "action",
                            "in": "path",
                            "required": True,
                            "schema": {"enum": ["admit", "forward", "return", "end", "message"]},
                        },
                    ],
                    "requestBody": {
                        "content": {
                            "application/json": {
                                "schema": {
                                    "type": "object",
                                    "properties": {
                                        "room": _SLUG,
                                        "department": _SLUG,
                                        "colleague": _SLUG,
                                        "note": {"type": "string", "maxLength": 500},
                                        "outcome": {"enum": ["resolved", "forwarded", "no_show"]},
                                        "text": {"type": "string", "maxLength": 300},
                                    },
                                }
                            }
                        }
                    },
                    "responses": {
                        "200": {"description": "The ticket after the action"},
                        **_errors(400, 401, 403, 404, 409),
                    },
                }
            },
            **_device_paths(),
        },
        "components": {
            "securitySchemes": {
                "session": {"type": "apiKey", "in": "cookie", "name": "empfang_session"},
                "csrf": {"type": "apiKey", "in": "header", "name": "X-CSRFToken"},
            },
            "schemas": {
                "Error": {
                    "type": "object",
                    "required": ["error"],
                    "properties": {"error": {"type": "string"}, "field": {"type": "string"}},
                },
                "Session": {
                    "type": "object",
                    "properties": {
                        "user": {"oneOf": [{"type": "object"}, {"type": "null"}]},
                        "csrf_token": {"type": "string"},
                    },
                },
                "RoomStatus": {
                    "type": "object",
                    "description": "The retained MQTT status payload (DESIGN section 3)",
                    "required": [
                        "v",
                        "room",
                        "name",
                        "state",
                        "occupants",
                        "waiting",
                        "since",
                        "seq",
                        "updated",
                        "ttl",
                    ],
                    "properties": {
                        "v": {"const": 1},
                        "room": _SLUG,
                        "name": {"type": "string"},
                        "state": {"enum": ["free", "busy", "waiting", "closed", "dnd"]},
                        "occupants": {"type": "integer", "minimum": 0},
                        "waiting": {"type": "integer", "minimum": 0},
                        "since": {"type": "string", "format": "date-time"},
                        "seq": {"type": "integer", "minimum": 0},
                        "updated": {"type": "string", "format": "date-time"},
                        "ttl": {"type": "integer", "minimum": 1},
                    },
                },
                "OpeningHours": {
                    "type": "object",
                    "description": "Weekly ranges in the site's time zone; empty means always open",
                    "properties": {
                        "weekly": {
                            "type": "object",
                            "propertyNames": {
                                "enum": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
                            },
                            "additionalProperties": {
                                "type": "array",
                                "items": {"type": "string", "examples": ["08:00-12:00"]},
                            },
                        },
                        "closed_days": {
                            "type": "array",
                            "items": {"type": "string", "format": "date"},
                        },
                    },
                },
                "ReceptionInfo": {
                    "type": "object",
                    "properties": {
                        "open": {"type": "boolean"},
                        "configured": {"type": "boolean"},
                        "waiting": {"type": "integer"},
                        "estimate_minutes": {"type": ["integer", "null"]},
                        "next_opening": {"type": ["string", "null"], "format": "date-time"},
                        "categories": {"type": "array", "items": {"type": "object"}},
                    },
                },
                "NewTicket": {
                    "type": "object",
                    "required": ["name", "category", "consent"],
                    "properties": {
                        "name": {"type": "string", "maxLength": 80},
                        "category": _SLUG,
                        "description": {"type": "string", "maxLength": 500},
                        "consent": {"const": True},
                        "language": {"enum": ["de", "en"]},
                        "device": _SLUG,
                    },
                },
                "TicketView": {
                    "type": "object",
                    "properties": {
                        "ticket": {"type": "string"},
                        "status": {"enum": ["waiting", "serving", "ended"]},
                        "position": {"type": ["integer", "null"]},
                        "estimate_minutes": {"type": ["integer", "null"]},
                        "next": {"type": "boolean"},
                        "forwarded_to": {"type": ["string", "null"]},
                        "messages": {"type": "array", "items": {"type": "object"}},
                        "room": {"type": ["object", "null"]},
                        "staff": {"type": ["string", "null"]},
                        "outcome": {"type": ["string", "null"]},
                    },
                },
                "Room": {
                    "type": "object",
                    "properties": {
                        "slug": _SLUG,
                        "name": {"type": "string"},
                        "kind": {"enum": ["reception", "consultation", "meeting"]},
                        "policy": {"enum": ["open", "knock", "private"]},
                        "department": {"oneOf": [_SLUG, {"type": "null"}]},
                        "enabled": {"type": "boolean"},
                        "dnd": {"type": "boolean"},
                        "open": {"type": "boolean"},
                        "opening_hours": _ref("OpeningHours"),
                        "status": {"oneOf": [_ref("RoomStatus"), {"type": "null"}]},
                    },
                },
                **_device_schemas(),
            },
        },
    }


def _device_param() -> list[dict[str, Any]]:
    return [{"name": "device_id", "in": "path", "required": True, "schema": _SLUG}]


def _admin(op: dict[str, Any], *codes: int) -> dict[str, Any]:
    """An admin operation: session (and CSRF for changes) plus the usual refusals."""
    op.setdefault("security", [{"session": [], "csrf": []}])
    op["responses"] = {**op["responses"], **_errors(401, 403, *codes)}
    return op


def _json_body(schema: dict[str, Any]) -> dict[str, Any]:
    return {"required": True, "content": {"application/json": {"schema": schema}}}


def _device_paths() -> dict[str, Any]:
    """The devices API: enrollment (devices) and fleet management (admins)."""
    busy = _json(_ref("Error"), "The broker did not take the change; nothing changed")
    with_code = {"allOf": [_ref("Device"), _ref("EnrollmentCode")]}
    return {
        "/devices": {
            "get": _admin(
                {
                    "summary": "Every device with its reported state (admins)",
                    "security": [{"session": []}],
                    "parameters": [
                        {
                            "name": "kind",
                            "in": "query",
                            "schema": {"enum": ["kiosk", "display", "light"]},
                        },
                        {"name": "location", "in": "query", "schema": {"type": "string"}},
                    ],
                    "responses": {
                        "200": _json(
                            {
                                "type": "object",
                                "properties": {
                                    "devices": {"type": "array", "items": _ref("Device")}
                                },
                            },
                            "The devices",
                        )
                    },
                }
            ),
            "post": _admin(
                {
                    "summary": "Create a device (admins); the answer holds its one-time code",
                    "requestBody": _json_body(_ref("DeviceInput")),
                    "responses": {"201": _json(with_code, "The device and its code (shown once)")},
                },
                400,
                409,
            ),
        },
        "/devices/enroll": {
            "post": {
                "summary": "Enroll a device with its one-time code",
                "description": (
                    "Called by `empfang-display enroll` and `empfang-kiosk enroll`. Needs "
                    "Content-Type application/json, no session or CSRF token. The code is "
                    "spent on success. Rate-limited per address."
                ),
                "requestBody": _json_body(
                    {
                        "type": "object",
                        "required": ["code"],
                        "properties": {
                            "code": {"type": "string", "examples": ["K7QM-2XPA-9RTW-HC4E"]},
                            "kind": {"enum": ["kiosk", "display", "light"]},
                        },
                    }
                ),
                "responses": {
                    "200": _json(_ref("Enrollment"), "The device's id and broker login"),
                    **_errors(400, 409),
                    "403": _json(_ref("Error"), "Unknown, expired or used code"),
                    "429": _json(_ref("Error"), "Too many attempts from this address"),
                    "503": busy,
                },
            }
        },
        "/devices/{device_id}": {
            "get": _admin(
                {
                    "summary": "One device (admins)",
                    "security": [{"session": []}],
                    "parameters": _device_param(),
                    "responses": {"200": _json(_ref("Device"), "The device")},
                },
                404,
            ),
            "patch": _admin(
                {
                    "summary": "Change name, location or rooms (admins); the device follows",
                    "parameters": _device_param(),
                    "requestBody": _json_body(_ref("DeviceInput")),
                    "responses": {"200": _json(_ref("Device"), "The changed device"), "503": busy},
                },
                400,
                404,
                409,
            ),
            "delete": _admin(
                {
                    "summary": "Revoke a device (admins): its broker login ends at once",
                    "parameters": _device_param(),
                    "responses": {"200": _json(_ref("Device"), "The revoked device"), "503": busy},
                },
                404,
            ),
        },
        "/devices/{device_id}/code": {
            "post": _admin(
                {
                    "summary": "Issue a fresh enrollment code (admins); the old one stops working",
                    "parameters": _device_param(),
                    "responses": {"200": _json(with_code, "The device and its new code")},
                },
                404,
                409,
            )
        },
        "/devices/{device_id}/cmd": {
            "post": _admin(
                {
                    "summary": "Send a command to a device (admins)",
                    "parameters": _device_param(),
                    "requestBody": _json_body(
                        {
                            "type": "object",
                            "required": ["cmd"],
                            "properties": {"cmd": {"enum": ["reload", "identify"]}},
                        }
                    ),
                    "responses": {"202": {"description": "Sent (QoS 1, not retained)"}},
                },
                400,
                404,
                409,
            )
        },
    }


def _device_schemas() -> dict[str, Any]:
    kinds = {"enum": ["kiosk", "display", "light"]}
    time = {"type": ["string", "null"], "format": "date-time"}
    return {
        "DeviceInput": {
            "type": "object",
            "properties": {
                "id": _SLUG,
                "kind": kinds,
                "name": {"type": "string", "maxLength": 200},
                "location": {"type": "string", "maxLength": 200},
                "rooms": {
                    "type": "array",
                    "items": _SLUG,
                    "description": "Rooms to show; a kiosk: one room of kind reception",
                },
            },
        },
        "Device": {
            "type": "object",
            "properties": {
                "id": _SLUG,
                "kind": kinds,
                "name": {"type": "string"},
                "location": {"type": "string"},
                "rooms": {"type": "array", "items": _SLUG},
                "enrollment": {"enum": ["pending", "expired", "enrolled", "revoked"]},
                "code_expires": time,
                "enrolled_at": time,
                "revoked": {"type": "boolean"},
                "online": {"type": "boolean"},
                "last_seen": time,
                "version": {"type": ["string", "null"]},
                "telemetry": {"type": "object"},
            },
        },
        "EnrollmentCode": {
            "type": "object",
            "properties": {
                "code": {"type": "string"},
                "code_expires": {"type": "string", "format": "date-time"},
            },
        },
        "Enrollment": {
            "type": "object",
            "properties": {
                "device": _SLUG,
                "kind": kinds,
                "name": {"type": "string"},
                "site": _SLUG,
                "broker": {
                    "type": "object",
                    "properties": {
                        "url": {"type": "string", "examples": ["mqtts://broker.example:8883"]},
                        "host": {"type": "string"},
                        "port": {"type": "integer"},
                        "tls": {"type": "boolean"},
                        "username": {"type": "string"},
                        "password": {"type": "string"},
                    },
                },
                "ca_cert": {"type": "string", "description": "PEM; empty on a plain-TCP broker"},
                "device_id": {**_SLUG, "description": "the same as device (for the firmware)"},
                "username": {"type": "string", "description": "the same as broker.username"},
                "password": {"type": "string", "description": "the same as broker.password"},
                "rooms": {"type": "array", "items": _SLUG},
            },
        },
    }
