"""Shard text on a terminal and in a spreadsheet: what other people wrote into a shard is shown, never obeyed.

A terminal acts on escape sequences (colours, cursor moves, window titles, OSC 8 links, clipboard writes) and a
spreadsheet evaluates a cell that starts with ``=``, ``+``, ``-`` or ``@`` as a formula (``=HYPERLINK(...)``).
"""

from __future__ import annotations

import re
import unicodedata
from typing import Any

# CSI (ESC [ ... final byte) and OSC / DCS / APC strings (ESC ] ... BEL or ST): removed whole, not just their ESC.
_ESCAPES = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b[\]PX^_][^\x07\x1b]*(?:\x07|\x1b\\)?|\x9b[0-?]*[ -/]*[@-~]")
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r", "\n")


def printable(value: Any) -> str:
    """``str(value)`` with terminal escape sequences and control/format characters removed (line breaks kept,
    tabs as spaces; bidi overrides dropped too, so text cannot be made to read backwards) and undecodable bytes
    shown as U+FFFD."""
    text = _ESCAPES.sub("", str(value)).replace("\t", " ")
    out = []
    for ch in text:
        if ch == "\n" or ch.isprintable():
            out.append(ch)
            continue
        kind = unicodedata.category(ch)
        if kind == "Cs":
            out.append("\ufffd")
        elif kind.startswith("Z"):  # non-breaking and other spaces
            out.append(" ")
    return "".join(out)


def cell(value: Any):
    """A rich table cell showing ``value`` as plain text: printable, and never read as rich markup."""
    from rich.text import Text

    return Text(printable(value))


def csv_cell(value: Any) -> str:
    """A CSV field a spreadsheet shows as text: control characters removed and a leading ``= + - @`` (after any
    blanks) prefixed with an apostrophe, the OWASP-recommended neutraliser."""
    text = printable(value).replace("\n", " ")
    return "'" + text if text.lstrip(" ").startswith(_FORMULA_START) else text
