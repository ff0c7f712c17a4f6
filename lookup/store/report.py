"""What a load reports: lines loaded, lines rejected and why, fields dropped and why.

The same for every backend of the store, so that an operator reads one report whatever
holds the profiles.
"""

from __future__ import annotations

from hub.models import Frozen


class LineNote(Frozen):
    """Something said about one line: its 1-based number and what."""

    line: int
    reason: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.reason}"


class Rejection(LineNote):
    """A line that was not loaded, and why."""


class IngestWarning(LineNote):
    """A line loaded without something it held (a field dropped), and why."""


class IngestReport(Frozen):
    """The outcome of one ingest: how many lines were loaded, which were rejected, and
    what was left out of loaded ones."""

    kind: str
    loaded: int
    rejected: tuple[Rejection, ...] = ()
    warnings: tuple[IngestWarning, ...] = ()
