"""Small checks shared by forms and the JSON API; each failure names its field."""

from __future__ import annotations

from collections.abc import Collection

from hub.errors import ValidationError
from protocol.text import BAD_CHARS_REASON, is_clean
from protocol.topics import is_slug


def text(value: object, field: str, *, max_len: int, required: bool = True) -> str:
    """A trimmed single-line string of at most `max_len` characters."""
    if value is None:
        value = ""
    if not isinstance(value, str):
        raise ValidationError(field, "must be text")
    value = value.strip()
    if required and not value:
        raise ValidationError(field, "is required")
    if len(value) > max_len:
        raise ValidationError(field, f"must be at most {max_len} characters")
    if not is_clean(value):
        raise ValidationError(field, BAD_CHARS_REASON, code="text.control_char")
    return value


def slug(value: object, field: str = "slug") -> str:
    """A lower-case slug: letters a-z, digits and inner hyphens, 1 to 64 characters."""
    if not isinstance(value, str) or not is_slug(value.strip()):
        raise ValidationError(
            field,
            "must be 1-64 lower-case letters, digits or hyphens,"
            " not starting or ending with a hyphen",
        )
    return value.strip()


def choice(value: object, field: str, options: Collection[str]) -> str:
    """One of `options`."""
    if not isinstance(value, str) or value not in options:
        raise ValidationError(field, f"must be one of {', '.join(options)}")
    return value


def flag(value: object, field: str) -> bool:
    """A boolean from JSON (true/false) or a form ('on', '1', 'true', '0', ...)."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("on", "1", "true", "yes"):
        return True
    if value is None or (
        isinstance(value, str) and value.lower() in ("", "0", "false", "no", "off")
    ):
        return False
    raise ValidationError(field, "must be true or false")


def multiline(value: object, field: str, *, max_len: int, required: bool = True) -> str:
    """Free text that may span lines (tabs and newlines allowed, other controls not)."""
    if value is None:
        value = ""
    if not isinstance(value, str):
        raise ValidationError(field, "must be text")
    value = value.replace("\r\n", "\n").strip()
    if required and not value:
        raise ValidationError(field, "is required")
    if len(value) > max_len:
        raise ValidationError(field, f"must be at most {max_len} characters")
    if not is_clean(value, multiline=True):
        raise ValidationError(field, BAD_CHARS_REASON, code="text.control_char")
    return value
