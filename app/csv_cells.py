"""Text cells of a CSV that no spreadsheet runs as a formula (OWASP "CSV injection").

A cell that starts with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return is a formula (or
becomes one) in Excel, LibreOffice and Google Sheets: a volume named ``=HYPERLINK(…).npy`` would
run when the table is opened.  `text_cell` puts a ``'`` in front of such text, which spreadsheets
show but never run.  Only text goes through here: numbers (negative scores, positions) are
written as they are.

The escape is reversible: text that already starts with quotes followed by a formula character
gets one more quote, and `read_cell` takes one off, so ``read_cell(text_cell(s)) == s`` for any
``s`` (labels files are read back through it).  The JSON sidecars keep the true names.
"""

from __future__ import annotations

from collections.abc import Iterable

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def _is_escaped_formula(text: str) -> bool:
    """``text`` (which starts with ``'``) is quotes followed by a formula character."""
    return text.lstrip("'").startswith(FORMULA_STARTS)


def text_cell(value: object) -> str:
    """``value`` as a CSV text cell that cannot start a formula: a leading ``'`` where needed."""
    text = str(value)
    if text.startswith(FORMULA_STARTS) or (text.startswith("'") and _is_escaped_formula(text)):
        return "'" + text
    return text


def read_cell(text: str) -> str:
    """The text `text_cell` was given: one leading ``'`` taken off an escaped formula."""
    return text[1:] if text.startswith("'") and _is_escaped_formula(text) else text


def text_row(cells: Iterable[object]) -> list[str]:
    """Every cell of a row of text (a header) through `text_cell`."""
    return [text_cell(cell) for cell in cells]
