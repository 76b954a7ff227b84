"""One place that decides how wide tables are: the terminal's width, or wide when piped."""

from __future__ import annotations

import sys

from rich.console import Console


def table_console() -> Console:
    # A pipe or a log has no width; wrapping tables there makes them unreadable.
    return Console() if sys.stdout.isatty() else Console(width=240)
