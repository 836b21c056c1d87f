"""Text from a dataset (group names, instructions, reasons that quote them) inside a Markdown report.
A ``|`` ends a table cell and a line break ends its row, so such text broke the table; an HTML tag
was rendered. ``md_cell`` makes any text one literal cell: the characters that are Markdown or HTML
syntax there backslash-escaped (CommonMark shows them as themselves), line breaks made spaces."""

from __future__ import annotations

import re

SPECIAL = re.compile(r"([\\|<>&`*])")  # a backslash first of all: an escape of its own must not pair up


def md_cell(value: object) -> str:
    """``value`` as text that reads as itself in a Markdown table cell (or any Markdown line)."""
    return SPECIAL.sub(r"\\\1", " ".join(str(value).splitlines()))
