"""The JSON API's contract: request validation and the OpenAPI document from one source.

Each operation under /api/v1 is declared with `operation(...)`, naming its pydantic models
(`hub.schemas`) and the statuses it answers. SpecTree validates requests against those
models and builds the OpenAPI document from the same declarations, so the document cannot
say something the hub does not do.
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Callable
from typing import Any

from flask import request
from spectree import Response, SecurityScheme, SpecTree
from spectree.models import InType, SecureType, SecuritySchemeData

from hub.errors import ValidationError
from hub.schemas import ErrorBody

ERROR_TEXT = {
    400: "Invalid input; `field` names the offending field",
    401: "Login required",
    403: "Not allowed for this caller",
    404: "No such thing",
    409: "Conflicts with what exists now",
    413: "Too large",
    422: "Well-formed, but breaks a rule of the hub (e.g. an unknown room)",
    429: "Too many requests; try again later",
}
STAFF = [{"session": [], "csrf": []}]
STAFF_READ = [{"session": []}]
ADMIN_READ = STAFF_READ


def _refuse_invalid(req: Any, resp: Any, error: Exception | None, *_: Any) -> None:
    """Turn a pydantic refusal into the hub's own error body (one field, one reason)."""
    if error is None:
        return
    details = error.errors() if hasattr(error, "errors") else []
    first = details[0] if details else {}
    loc: list[str] = []
    for part in first.get("loc", ()):
        if part == "[key]" and loc:  # a bad key: the field is the mapping that holds it
            loc.pop()
        elif isinstance(part, str) and part.isidentifier() and part not in ("body", "query"):
            # Union members ("constrained-str", "literal['']") and list indexes are no field.
            loc.append(str(part))
    field = ".".join(loc) if loc else "body"
    raise ValidationError(field, str(first.get("msg", error)), code="request.invalid")


def make_spec() -> SpecTree:
    """The SpecTree behind the API's operations (strict: only declared routes appear)."""
    return SpecTree(
        "flask",
        mode="strict",
        title="empfang hub API",
        version="1",
        path="api/v1/docs",
        validation_error_status=400,
        validation_error_model=ErrorBody,
        before=_refuse_invalid,
        naming_strategy=lambda model: model.__name__,
        nested_naming_strategy=lambda _parent, child: child,
        annotations=False,  # views read request.context: no hints resolved across modules
        security_schemes=[
            SecurityScheme(
                name="session",
                data=SecuritySchemeData(
                    type=SecureType.API_KEY, field_in=InType.COOKIE, name="empfang_session"
                ),
            ),
            SecurityScheme(
                name="csrf",
                data=SecuritySchemeData(
                    type=SecureType.API_KEY, field_in=InType.HEADER, name="X-CSRFToken"
                ),
            ),
        ],
    )


# The decorators need their SpecTree when the view modules are imported. It holds only
# declarations (and a cached document), never request state.
spec = make_spec()


def operation(
    ok: int,
    body: type | None = None,
    *,
    json: type | None = None,
    query: type | None = None,
    errors: tuple[int, ...] = (),
    security: list[dict[str, list[str]]] | None = None,
    tags: tuple[str, ...] = (),
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Declare an API operation: its success status and body, request models and refusals."""
    codes = set(errors) | ({400} if json is not None or query is not None else set())
    if security == STAFF:  # a missing login is 401, a missing or foreign CSRF token 403
        codes |= {401, 403}
    responses: dict[str, Any] = {f"HTTP_{ok}": body}
    for code in sorted(codes):
        responses[f"HTTP_{code}"] = ErrorBody

    def wrap(func: Callable[..., Any]) -> Callable[..., Any]:
        validated = spec.validate(
            json=json,
            query=query,
            resp=Response(**responses),
            tags=tags,
            security=security,
        )(func)
        if json is None:
            return validated

        @functools.wraps(validated)
        def checked(*args: Any, **kwargs: Any) -> Any:
            _require_json_object()  # before the model: a form post is refused as such
            return validated(*args, **kwargs)

        return checked

    return wrap


def _require_json_object() -> None:
    # Only application/json: a cross-site form cannot send it without a CORS preflight.
    if not request.is_json:
        raise ValidationError("body", "must be application/json", code="request.not_json")
    if not isinstance(request.get_json(silent=True), dict):
        raise ValidationError("body", "must be a JSON object", code="request.not_object")


def body() -> Any:
    """The validated JSON body of the current request (a model of `hub.schemas`)."""
    return request.context.json  # type: ignore[attr-defined]


def args() -> Any:
    """The validated query of the current request."""
    return request.context.query  # type: ignore[attr-defined]


def given(model: Any) -> dict[str, Any]:
    """The fields a request body actually set (left-out fields keep their value)."""
    return model.model_dump(exclude_unset=True, mode="json")


def document(version: str) -> dict[str, Any]:
    """The OpenAPI document of this hub, for the running version."""
    doc = copy.deepcopy(spec.spec)
    doc["info"]["version"] = version
    doc["info"]["license"] = {"name": "EUPL-1.2", "identifier": "EUPL-1.2"}
    doc["info"]["description"] = (
        "Rooms and their live status, the reception for kiosks and apps, the staff queue "
        "and devices. Reading rooms is public (states and counts only, never personal "
        "data). State changes need a staff session cookie and the CSRF token from "
        "/api/v1/session in the X-CSRFToken header. Every refusal is a JSON object "
        '{"error", "field", "code"}.'
    )
    for path in doc.get("paths", {}).values():
        for op in path.values():
            for status, answer in op.get("responses", {}).items():
                if status.isdigit() and int(status) in ERROR_TEXT:
                    answer["description"] = ERROR_TEXT[int(status)]
    return doc
