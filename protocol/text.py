"""The one rule for text that people type: which characters may cross any boundary.

Forms, the JSON API and the wire contract all apply it, so a name the hub accepts is
always one it can publish. Control characters (C0, DEL, C1) and lone surrogates (which
UTF-8 cannot encode) are refused; free text may also hold newlines and tabs.
"""

from __future__ import annotations

import re
from typing import Final

BAD_CHARS: Final = re.compile(r"[\x00-\x1f\x7f-\x9f\ud800-\udfff]")
BAD_CHARS_MULTILINE: Final = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff]")
BAD_CHARS_REASON: Final = "contains control characters or invalid Unicode"


def is_clean(value: str, *, multiline: bool = False) -> bool:
    """Whether `value` holds no control characters (bar newline and tab if `multiline`)."""
    pattern = BAD_CHARS_MULTILINE if multiline else BAD_CHARS
    return pattern.search(value) is None


# The same rule as JSON Schema patterns (ECMA-262 and Rust's regex agree on this subset),
# for the OpenAPI document and request validation: no control characters anywhere, and
# no blank at either end (the hub trims, so a padded value would change on the way in).
_INNER: Final = r"[^\x00-\x1f\x7f-\x9f]"
_INNER_MULTILINE: Final = r"[^\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]"
_END: Final = r"[^\x00-\x20\x7f-\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]"
LINE_PATTERN: Final = rf"^{_END}(?:{_INNER}*{_END})?$"
MULTILINE_PATTERN: Final = rf"^{_END}(?:{_INNER_MULTILINE}*{_END})?$"
