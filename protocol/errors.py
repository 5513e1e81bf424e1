"""Errors raised when a topic or payload breaks the wire contract."""

from __future__ import annotations

__all__ = ["PayloadError", "TopicError"]


class PayloadError(ValueError):
    """A message payload does not match the wire contract."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason: str = reason


class TopicError(ValueError):
    """A topic name or one of its slugs does not match the wire contract."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason: str = reason
