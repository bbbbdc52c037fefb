"""Checks that a text value can be stored by PostgreSQL.

Postgres `text` cannot hold NUL, and UTF-8 (the only encoding we write) cannot encode a
lone surrogate (U+D800..U+DFFF, which Python strings and `json.loads` happily produce
from `"\\ud800"`); `jsonb` refuses the `\\u0000` and lone-surrogate escapes for the same
reason. Any other code point, including control characters and bidi overrides, is legal
text and is stored as given.
"""

from __future__ import annotations

import re
from typing import Final

_UNSTORABLE: Final = re.compile("[\x00\ud800-\udfff]")


def is_storable(text: str) -> bool:
    """True when `text` contains neither NUL nor a lone surrogate.

    ASCII text (the common case) only needs the NUL scan, which is a C `memchr`.
    """
    if text.isascii():
        return "\x00" not in text
    return _UNSTORABLE.search(text) is None


def document_is_storable(document: object) -> bool:
    """True when no string in a parsed JSON document (keys included) has NUL or a lone
    surrogate, i.e. the document can be stored as `jsonb`.

    Iterative, so a document nested as deep as the parser allows cannot overflow the stack.
    """
    stack = [document]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if not is_storable(item):
                return False
        elif isinstance(item, dict):
            for key, value in item.items():
                if not is_storable(key):
                    return False
                stack.append(value)
        elif isinstance(item, list):
            stack.extend(item)
    return True


def first_unstorable(fields: tuple[tuple[str, str | None], ...]) -> str | None:
    """Name of the first field whose value is not storable, or None if all are.

    Callers first test the concatenation of all values with `is_storable` (one scan) and
    only call this on failure, to name the culprit in the rejection detail.
    """
    for name, value in fields:
        if value is not None and not is_storable(value):
            return name
    return None
