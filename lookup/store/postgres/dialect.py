"""The store's SQL, written for SQLite, as PostgreSQL reads it.

The store's modules hold one text of each statement. On PostgreSQL, ``translate`` turns
it into PostgreSQL's once (cached): placeholders (``?`` and ``:name`` become psycopg's
``%s`` and ``%(name)s``), ``INSERT OR IGNORE`` (``ON CONFLICT DO NOTHING``), a list
passed as JSON text to ``IN (SELECT value FROM json_each(?))`` (``= ANY(%s)``, the
parameter handed over as a list), ``json_each(?) AS j`` (``jsonb_array_elements_text``),
``rowid`` (``seq``), ``temp.`` (``pg_temp.``) and ``CROSS JOIN ... ON`` (SQLite's way
of fixing the join order; a plain ``JOIN``). The few statements SQLite says in a
way of its own (``UPDATE OR REPLACE``, ``INSERT OR REPLACE``, a temporary table) have
their PostgreSQL text in ``OVERRIDES``. A statement that still holds a SQLite-only word
after that is refused (``UntranslatedSQL``) rather than sent: a new statement of the
store then fails its tests on PostgreSQL at once.

``PgConnection`` gives the store's modules what they use of ``sqlite3.Connection``
(``execute``, ``executemany``, ``in_transaction``, ``set_progress_handler``) over a
psycopg connection.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import psycopg
from psycopg import pq

from lookup.store.backend import NAMED

Params = Sequence[Any] | Mapping[str, Any]
JSON_LIST = re.compile(r"IN \(SELECT value FROM json_each\(\?\)\)")
JSON_TABLE = re.compile(r"json_each\(\?\) AS (\w+)")
SQLITE_ONLY = re.compile(
    r"\b(PRAGMA|json_each|json_extract|json_type|rowid|OR IGNORE|OR REPLACE|WITHOUT ROWID)\b"
    r"|\btemp\.", re.IGNORECASE)
TICK_S = 1.0  # how often a progress handler is called while a statement runs
LIST_MARK = "\x00"  # where a JSON list parameter stood, until placeholders are numbered

# Statements whose PostgreSQL text is not a mechanical translation; a tuple runs in order.
OVERRIDES: dict[str, str | tuple[str, ...]] = {
    # SQLite replaces the survivor's row of a key both persons hold: delete it, then move.
    "UPDATE OR REPLACE fragments SET person_id = :survivor WHERE person_id = :loser": (
        "DELETE FROM fragments AS s USING fragments AS l WHERE s.person_id = :survivor"
        " AND l.person_id = :loser AND s.dataset = l.dataset AND s.key_space = l.key_space"
        " AND s.key_value = l.key_value",
        "UPDATE fragments SET person_id = :survivor WHERE person_id = :loser",
    ),
    # SQLite leaves the rows that would collide where they are (the next statement
    # deletes them).
    "UPDATE OR IGNORE shared_links SET person_id = :survivor WHERE person_id = :loser": (
        "UPDATE shared_links AS l SET person_id = :survivor WHERE l.person_id = :loser"
        " AND NOT EXISTS (SELECT 1 FROM shared_links AS s WHERE s.shared_id = l.shared_id"
        " AND s.person_id = :survivor)"
    ),
    "INSERT OR REPLACE INTO meta VALUES (?, ?)": (
        "INSERT INTO meta VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value"
    ),
    # The order of arrival is seq (SQLite's rowid), the last column so that the rows
    # inserted without a column list leave it to its default.
    "CREATE TEMP TABLE held_events (event_id TEXT, person_id INTEGER, ts INTEGER, type TEXT,"
    " dataset TEXT, sole_key TEXT, body TEXT)": (
        "CREATE TEMP TABLE held_events (event_id TEXT COLLATE \"C\", person_id BIGINT,"
        " ts BIGINT, type TEXT, dataset TEXT, sole_key TEXT, body TEXT,"
        " seq BIGINT GENERATED ALWAYS AS IDENTITY) ON COMMIT DROP"
    ),
}


class UntranslatedSQL(ValueError):
    """A statement holds SQLite's own SQL that PostgreSQL has no translation for."""


@dataclass(frozen=True)
class Statement:
    """One statement as PostgreSQL runs it, and which parameters are JSON lists."""

    text: str
    lists: tuple[int | str, ...]  # positions (or names) of JSON-list parameters

    def params(self, params: Params) -> Params:
        """``params`` with each JSON list read back into a list (sent as an array)."""
        if not self.lists:
            return params
        if isinstance(params, Mapping):
            named = dict(params)
            for name in self.lists:
                named[str(name)] = json.loads(named[str(name)])
            return named
        listed = list(params)
        for n in self.lists:
            listed[int(n)] = json.loads(listed[int(n)])
        return listed


@lru_cache(maxsize=1024)
def translate(text: str) -> tuple[Statement, ...]:
    """PostgreSQL's statement(s) for one SQLite statement of the store."""
    override = OVERRIDES.get(text, text)
    texts = (override,) if isinstance(override, str) else override
    return tuple(_translated(one) for one in texts)


def _translated(text: str) -> Statement:
    text = text.replace("%", "%%")
    text = JSON_LIST.sub(f"= ANY({LIST_MARK})", text)
    text = JSON_TABLE.sub(r"jsonb_array_elements_text(?::jsonb) AS \1(value)", text)
    text = re.sub(r"\bINSERT OR IGNORE INTO (.*)$",
                  r"INSERT INTO \1 ON CONFLICT DO NOTHING", text, flags=re.DOTALL)
    text = re.sub(r"\bCROSS JOIN (\w+ AS \w+ ON)\b", r"JOIN \1", text)  # SQLite: join order
    text = re.sub(r"\browid\b", "seq", text)
    text = re.sub(r"\btemp\.", "pg_temp.", text)
    leftover = SQLITE_ONLY.search(text)
    if leftover:
        raise UntranslatedSQL(f"no PostgreSQL for {leftover.group(0)!r} in: {text}")
    lists: list[int | str] = []
    if NAMED.search(text):
        if LIST_MARK in text:
            raise UntranslatedSQL(f"a JSON list among named parameters in: {text}")

        def named(match: re.Match[str]) -> str:
            return f"%({match.group(1)})s"
        return Statement(NAMED.sub(named, text), ())
    out, position = [], 0
    for piece in re.split(f"([?{LIST_MARK}])", text):
        if piece == "?":
            out.append("%s")
            position += 1
        elif piece == LIST_MARK:
            out.append("%s")
            lists.append(position)
            position += 1
        else:
            out.append(piece)
    return Statement("".join(out), tuple(lists))


class PgCursor:
    """What a statement returned: rows to fetch or iterate, and ``rowcount``."""

    def __init__(self, cursor: psycopg.Cursor[Any], rowcount: int) -> None:
        self._cursor = cursor
        self.rowcount = rowcount

    def fetchone(self) -> Any:
        return self._cursor.fetchone() if self._cursor.description else None

    def fetchall(self) -> list[Any]:
        return self._cursor.fetchall() if self._cursor.description else []

    def __iter__(self) -> Any:
        return iter(self.fetchall())


class PgConnection:
    """One pooled psycopg connection, spoken to as the store speaks to ``sqlite3``."""

    dialect = "postgresql"

    def __init__(self, connection: psycopg.Connection[Any]) -> None:
        self.raw = connection
        self._progress: Callable[[], int | None] | None = None

    def execute(self, text: str, params: Params | None = None) -> PgCursor:
        cursor = self.raw.cursor()
        rowcount = 0
        with self._ticking():
            for statement in translate(text):
                cursor.execute(statement.text,
                               None if params is None else statement.params(params))
                rowcount += max(cursor.rowcount, 0)
        return PgCursor(cursor, rowcount)

    def executemany(self, text: str, rows: Iterable[Params]) -> PgCursor:
        cursor = self.raw.cursor()
        statements = translate(text)
        batch = list(rows)
        rowcount = 0
        if batch:
            for statement in statements:
                cursor.executemany(statement.text, [statement.params(r) for r in batch]
                                   if statement.lists else batch)
                rowcount += max(cursor.rowcount, 0)
        return PgCursor(cursor, rowcount)

    @property
    def in_transaction(self) -> bool:
        """Whether a transaction is open and has not failed (a failed one only rolls back)."""
        return self.raw.info.transaction_status == pq.TransactionStatus.INTRANS

    def set_progress_handler(self, handler: Callable[[], int | None] | None, steps: int, /) -> None:
        """Call ``handler`` while each statement runs, as SQLite calls it every ``steps``
        steps (it feeds a bulk load's heartbeat): PostgreSQL runs the statement in its own
        process, so here it is called every ``TICK_S`` from a thread, and once at the end.
        Its answer is ignored (SQLite would stop the statement on a non-zero one)."""
        self._progress = handler

    @contextmanager
    def _ticking(self) -> Iterator[None]:
        handler = self._progress
        if handler is None:
            yield
            return
        done = threading.Event()

        def tick() -> None:
            while not done.wait(TICK_S):
                handler()

        ticker = threading.Thread(target=tick, name="store-heartbeat", daemon=True)
        ticker.start()
        try:
            yield
        finally:
            done.set()
            ticker.join()
        handler()
