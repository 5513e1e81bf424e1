"""Errors the service layer raises; views turn them into 400, 403, 404 and 409 answers."""

from __future__ import annotations


class ServiceError(Exception):
    """Base for every refusal of the service layer."""

    status = 400

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field

    def to_dict(self) -> dict[str, str]:
        """The JSON error body."""
        body = {"error": f"{self.field}: {self.message}" if self.field else self.message}
        if self.field:
            body["field"] = self.field
        return body


class ValidationError(ServiceError):
    """Input that breaks a rule; the message names the field."""

    status = 400

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message, field)


class NotFound(ServiceError):
    """The thing asked for does not exist."""

    status = 404


class Conflict(ServiceError):
    """The change collides with what exists (a duplicate, a room in use)."""

    status = 409


class Forbidden(ServiceError):
    """The caller may not do this."""

    status = 403
