"""The forget log on PostgreSQL, in the hub's database beside the ledger and the outbox.

The SQLite adapter's behaviour (``state.forgets.sqlite``) for servers on many hosts: the
key is made once, by whichever process asks first, and shared by all; a forget's sequence
number comes from an identity column, which never hands a number out twice (not after its
row is erased, nor after its transaction rolled back). Forgets are erased once every live
process applied them, and after an hour in any case; confirmations of a process not heard
from for a day are erased with them. Times come from the caller's clock, like the
SQLite adapter's, and are stored as ``timestamptz``.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Collection, Mapping
from datetime import UTC, datetime
from typing import Any, cast

from psycopg.types.json import Jsonb

from hub.ports import Confirmation, ForgetEntry
from state.forgets.sqlite import KEEP_FORGETS_S, KEEP_SILENT_PROCESSES_S
from state.postgres import PostgresDatabase

CONFIRM = """
INSERT INTO forget_confirmations (process, seq, seen_at, cleaned)
VALUES (%s, %s, %s, %s)
ON CONFLICT (process) DO UPDATE
SET seq = excluded.seq, seen_at = excluded.seen_at, cleaned = excluded.cleaned
"""


class PostgresForgetLog:
    """``hub.ports.ForgetLog`` on the hub's PostgreSQL database."""

    def __init__(self, db: PostgresDatabase, clock: Callable[[], float] = time.time) -> None:
        self._db = db
        self._clock = clock

    def secret(self) -> bytes:
        with self._db.connection() as conn:
            conn.execute("INSERT INTO forget_key VALUES (1, %s) ON CONFLICT (id) DO NOTHING",
                         (secrets.token_bytes(32),))
            row = conn.execute("SELECT secret FROM forget_key").fetchone()
        assert row is not None  # inserted just before, or by another process
        return bytes(cast(bytes, row[0]))

    def record(self, digests: Collection[str]) -> int:
        now = self._clock()
        with self._db.transaction() as conn:
            conn.execute("DELETE FROM forgets WHERE recorded_at < %s",
                         (_moment(now - KEEP_FORGETS_S),))
            row = conn.execute("INSERT INTO forgets (recorded_at, digests) VALUES (%s, %s)"
                               " RETURNING seq", (_moment(now), sorted(digests))).fetchone()
        assert row is not None  # RETURNING gives the row inserted
        return cast(int, row[0])

    def since(self, seq: int) -> list[ForgetEntry]:
        with self._db.connection() as conn:
            rows: list[tuple[Any, ...]] = conn.execute(
                "SELECT seq, digests FROM forgets WHERE seq > %s ORDER BY seq", (seq,)).fetchall()
        return [ForgetEntry(number, frozenset(digests)) for number, digests in rows]

    def confirm(self, process: str, seq: int, cleaned: Mapping[str, int]) -> None:
        with self._db.connection() as conn:
            conn.execute(CONFIRM, (process, seq, _moment(self._clock()), Jsonb(dict(cleaned))))

    def confirmations(self) -> list[Confirmation]:
        with self._db.connection() as conn:
            rows: list[tuple[Any, ...]] = conn.execute(
                "SELECT process, seq, seen_at, cleaned FROM forget_confirmations"
                " ORDER BY process").fetchall()
        return [Confirmation(process, seq, seen_at.timestamp(), cleaned)
                for process, seq, seen_at, cleaned in rows]

    def erase(self, up_to: int) -> None:
        with self._db.transaction() as conn:
            conn.execute("DELETE FROM forgets WHERE seq <= %s", (up_to,))
            conn.execute("DELETE FROM forget_confirmations WHERE seen_at < %s",
                         (_moment(self._clock() - KEEP_SILENT_PROCESSES_S),))


def _moment(unix_s: float) -> datetime:
    return datetime.fromtimestamp(unix_s, UTC)
