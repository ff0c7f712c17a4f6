"""What a line must be for everything stored to stay readable: the checks at the edge.

A line that passes these checks can be merged with any later fragment of its person and
read back by every lookup, whichever backend stores it (SQLite or PostgreSQL): nothing
here touches a database. A line that fails is rejected with its reason (``RecordError``)
and costs nothing else. What each check keeps out, and why:

- bytes that are not UTF-8, and lines longer than ``MAX_LINE_BYTES`` (ten times AEP's
  hard limit of 100 KB for a profile record: every record AEP takes fits, and one
  runaway line cannot take the memory of a load);
- nesting deeper than ``MAX_DEPTH``: XDM's deepest standard paths are about ten levels,
  while orjson writes no more than 254, Python recurses about 1,000 deep and SQLite's
  JSON functions read 1,000 (a deeper record loaded once, then failed every merge);
- integers beyond 64 bits (SQLite's and PostgreSQL's ``bigint``): orjson reads them
  as floats, Python's json module as big integers that orjson then cannot write, so
  such a record broke the next merge of its person;
- instants a day or less from the calendar's edges (year 1, year 9999), which cannot
  be shown in every time zone: an event at ``0001-01-01T00:00:00+14:00`` loaded, then
  made every lookup of its person fail.

A key written twice in one object means its last value, as orjson, Python's json module
and PostgreSQL's ``jsonb`` all read it; a profile's line may be stored as it came, so a
backend must read stored lines that way too (SQLite's JSON functions, which take the
first, are never run on them).

Known score fields (where the field map puts ``lifetime_value`` and
``churn_propensity``, PRODUCT.md §7) that are not finite numbers in their range are not a
reason to lose the line: they are dropped from the record, with a warning, so that an
agent is never shown them.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from hub.summary import DEFAULT_FIELDS, SCORE_RANGES

MAX_LINE_BYTES = 1 << 20
MAX_DEPTH = 64
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# No time zone is more than a day from UTC, so an instant inside these is shown in all.
EARLIEST = datetime(1, 1, 2, tzinfo=UTC)
LATEST = datetime(9999, 12, 30, 23, 59, 59, 999_999, tzinfo=UTC)
# An integer literal of 19 digits or more, where a JSON value starts. It can also match
# inside a string, so a match is only a reason to look closer. Searching every line with
# it would cost as much as reading the line, so lines without 19 digits in a row (the
# digits turned into zeros, at C speed) are cleared first.
LONG_INTEGER = re.compile(r"[\[:,]\s*-?[0-9]{19}")
DIGITS_AS_ZEROS = bytes.maketrans(b"0123456789", b"0" * 10)
NINETEEN_DIGITS = b"0" * 19

FieldMap = Mapping[str, str | list[str]]


class RecordError(ValueError):
    """Why a line cannot be loaded; the message is shown to the operator as is.

    Messages never quote identity values: they are personal data.
    """


def text_of(line: str | bytes) -> str:
    """A line as text, without a byte order mark (a file's first line may carry one)."""
    if len(line) > MAX_LINE_BYTES:
        raise RecordError(f"line too long (more than {MAX_LINE_BYTES:,} bytes)")
    if isinstance(line, bytes):
        try:
            line = line.decode("utf-8")
        except UnicodeDecodeError as exc:
            bad = line[exc.start]
            raise RecordError(f"not UTF-8: byte 0x{bad:02x} at column {exc.start + 1}") from None
    return line[1:] if line.startswith("\ufeff") else line


def check_structure(value: dict[str, Any], text: str) -> None:
    """``RecordError`` unless ``value``, read from ``text``, is shallow enough and holds
    only 64-bit integers. Most lines are cleared by counting brackets and one search."""
    if text.count("{") + text.count("[") > MAX_DEPTH and _deeper_than(value, MAX_DEPTH):
        raise RecordError(f"nested more than {MAX_DEPTH} levels deep")
    if NINETEEN_DIGITS in text.encode().translate(DIGITS_AS_ZEROS) \
            and LONG_INTEGER.search(text) is not None:
        try:
            json.loads(text, parse_int=_int64)
        except json.JSONDecodeError as exc:
            raise RecordError(f"not JSON: {exc.msg} at column {exc.colno}") from None


def check_instant(moment: datetime, field: str, value: str) -> None:
    """``RecordError`` unless the aware ``moment`` can be shown in every time zone."""
    if not EARLIEST <= moment <= LATEST:
        raise RecordError(
            f"{field} is outside 0001-01-02 to 9999-12-30 (UTC): {value[:40]!r}")


def _deeper_than(value: dict[str, Any] | list[Any], limit: int) -> bool:
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > limit:
            return True
        children = item.values() if isinstance(item, dict) else item
        stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return False


def _int64(literal: str) -> int:
    digits = len(literal) - literal.startswith("-")
    if digits > 19 or not INT64_MIN <= int(literal) <= INT64_MAX:
        raise RecordError(f"an integer of {digits} digits is beyond the 64-bit range")
    return 0  # the value read is not kept


@dataclass(frozen=True, slots=True)
class ScoreField:
    """A summary number's path in a profile record, and the range it must be in."""

    name: str  # the summary's field
    path: tuple[str, ...]
    lowest: float
    highest: float

    def problem(self, value: object) -> str | None:
        """Why ``value`` cannot be shown as this score, or None when it can (read as the
        summary reads it: a number, or a string holding one)."""
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int | float | str):
            return f"{_shown(value)} is not a number"
        try:
            number = float(value)
        except (ValueError, OverflowError):
            return f"{_shown(value)} is not a number"
        if not math.isfinite(number):
            return f"{_shown(value)} is not a finite number"
        if not self.lowest <= number <= self.highest:
            return f"{_shown(value)} is outside {self.lowest:g}..{self.highest:g}"
        return None


def _shown(value: object) -> str:
    kinds: dict[type, str] = {dict: "an object", list: "a list"}
    return kinds.get(type(value), repr(value)[:40])


def score_fields(fields: FieldMap | None = None) -> tuple[ScoreField, ...]:
    """The score fields of the field map (``fields`` over the default map): every path
    the summary reads a ranged number from."""
    spec = {**DEFAULT_FIELDS, **(fields or {})}
    found: list[ScoreField] = []
    for name, (lowest, highest) in SCORE_RANGES.items():
        named = spec[name]
        alternatives = [named] if isinstance(named, str) else named
        found += [ScoreField(name, tuple(path.split(".")), lowest, highest)
                  for path in alternatives if "+" not in path]  # a+b is text, not a number
    return tuple(found)


def drop_bad_scores(record: dict[str, Any], scores: tuple[ScoreField, ...]) -> tuple[str, ...]:
    """Remove from ``record`` every score that cannot be shown; say what went, and why."""
    dropped: list[str] = []
    for score in scores:
        parent: Any = record
        for step in score.path[:-1]:
            parent = parent.get(step) if isinstance(parent, dict) else None
        if not isinstance(parent, dict) or score.path[-1] not in parent:
            continue
        problem = score.problem(parent[score.path[-1]])
        if problem is not None:
            del parent[score.path[-1]]
            dropped.append(f"dropped {'.'.join(score.path)} ({score.name}): {problem}")
    return tuple(dropped)
