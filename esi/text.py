"""Showing text that came from a user's file: in terminal messages and in spreadsheet cells.

Every message that shows text read from a file (a column name, a code, a cell value, a sheet
name) passes it through :func:`printable`, so a terminal escape sequence (``"\\x1b[31m"``), a
line break or another control character in a file is shown escaped, never acted upon; cell
values are shown through :func:`excerpt`, one short line, never a row. Text written into a CSV
file that a spreadsheet may open goes through :func:`spreadsheet_safe`, so that it cannot start
a formula.
"""

from __future__ import annotations

import re
from typing import Any

__all__ = ["printable", "excerpt", "spreadsheet_safe", "EXCERPT_CHARS"]

#: Longest cell excerpt shown in a message (characters, before the ``...``).
EXCERPT_CHARS = 60

_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def printable(text: object) -> str:
    """``text`` with every non-printable character written as its Python escape.

    Terminal escape sequences, line breaks, tabs, bidirectional-override and other control or
    format characters become ``\\x1b``, ``\\n``, ``\\u202e`` ...; everything printable
    (letters of any script included) is kept as it is.

    Examples
    --------
    >>> printable("age\\x1b[31m")
    'age\\\\x1b[31m'
    """
    s = str(text)
    if s.isprintable():
        return s
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in s)


def excerpt(value: object, limit: int = EXCERPT_CHARS, escape: bool = True) -> str:
    """A short one-line excerpt of a cell value for a message: its first line only, at most
    ``limit`` characters (the last three then ``...``). A value that runs over several lines
    is cut at the first line break and marked ``...``. With ``escape`` non-printable
    characters are escaped (:func:`printable`); without, the excerpt is left as text for a
    later ``repr``."""
    s = str(value)
    first, *rest = re.split(r"[\r\n]", s, maxsplit=1)
    cut = bool(rest)
    if len(first) > limit:
        first, cut = first[: max(limit - 3, 1)], True
    first += "..." if cut else ""
    return printable(first) if escape else first


def spreadsheet_safe(value: Any) -> Any:
    """A cell value that a spreadsheet program cannot read as a formula.

    Text starting with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return gets a leading
    apostrophe (the usual defence against CSV formula injection, OWASP); numbers, and text that
    is just a number such as ``"-1.5"``, are returned unchanged, so negative numbers stay
    numbers, and a lone ``-`` (no formula: the disclosure control's hidden cell) stays as is.
    Anything that is not text is returned unchanged.
    """
    if isinstance(value, str) and value.startswith(_FORMULA_START) \
            and not _NUMBER.fullmatch(value) and value != "-":
        return "'" + value
    return value
