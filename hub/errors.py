"""Errors the service layer raises; views turn them into 400, 403, 404 and 409 answers."""

from __future__ import annotations


class ServiceError(Exception):
    """Base for every refusal of the service layer."""

    status = 400

    def __init__(self, message: str, field: str | None = None, *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field
        self.code = code  # stable: pages translate by it, programs may match on it

    def to_dict(self) -> dict[str, str]:
        """The JSON error body."""
        body = {"error": f"{self.field}: {self.message}" if self.field else self.message}
        if self.field:
            body["field"] = self.field
        if self.code:
            body["code"] = self.code
        return body


class ValidationError(ServiceError):
    """Input that breaks a rule; the message names the field."""

    status = 400

    def __init__(self, field: str, message: str, *, code: str | None = None) -> None:
        super().__init__(message, field, code=code)


class NotFound(ServiceError):
    """The thing asked for does not exist."""

    status = 404


class Conflict(ServiceError):
    """The change collides with what exists (a duplicate, a room in use)."""

    status = 409


class Forbidden(ServiceError):
    """The caller may not do this."""

    status = 403


class RuleBroken(ValidationError):
    """Well-formed input that breaks a rule a schema cannot state (an unknown room,
    overlapping hours): 422, so that a schema-valid request is never called malformed."""

    status = 422
