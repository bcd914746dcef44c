"""HTTP byte ranges (RFC 9110 §14): one range of a file of known size.

:func:`parse_range` reads a ``Range`` header: ``bytes=FIRST-LAST``, ``bytes=FIRST-`` or
``bytes=-SUFFIX``. A header that is not of that form, or asks for several ranges, is ignored
(the whole file is sent, as RFC 9110 allows); a single range that starts past the end is
:data:`UNSATISFIABLE` (416).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final, Literal

_RANGE = re.compile(r"bytes=(?P<first>[0-9]{0,19})-(?P<last>[0-9]{0,19})")

UNSATISFIABLE: Final = "unsatisfiable"


@dataclass(frozen=True)
class ByteRange:
    """Bytes ``start`` to ``end`` inclusive."""

    start: int
    end: int

    @property
    def length(self) -> int:
        """How many bytes."""
        return self.end - self.start + 1

    def content_range(self, size: int) -> str:
        """The ``Content-Range`` header of a 206 answer."""
        return f"bytes {self.start}-{self.end}/{size}"


def parse_range(header: str | None, size: int
                ) -> ByteRange | Literal["unsatisfiable"] | None:
    """The range ``header`` asks of a ``size``-byte file: a :class:`ByteRange`,
    :data:`UNSATISFIABLE`, or ``None`` (no usable header: send it all)."""
    if header is None:
        return None
    match = _RANGE.fullmatch(header.strip())
    if match is None:
        return None
    first, last = match["first"], match["last"]
    if not first and not last:
        return None
    if not first:  # the last N bytes
        suffix = int(last)
        if suffix == 0 or size == 0:
            return UNSATISFIABLE
        return ByteRange(max(0, size - suffix), size - 1)
    start = int(first)
    end = int(last) if last else size - 1
    if last and end < start:
        return None  # invalid: ignored
    if start >= size:
        return UNSATISFIABLE
    return ByteRange(start, min(end, size - 1))
