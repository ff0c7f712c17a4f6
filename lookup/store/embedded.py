"""``EmbeddedProfileStore``: the SQLite profile provider the hub ships with.

It owns the store's public surface (lookup, ping, ingest, counts, close) and turns
SQLite's errors into the hub's: a busy or locked database is a ``TransientError``,
anything else a ``PermanentError``. Nothing is opened until first use.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from hub.models import Identity, Profile
from hub.ports import HubError, PermanentError, TransientError
from lookup.store.connection import ThreadConnections
from lookup.store.ingest import IngestReport, Kind, ingest_lines
from lookup.store.read import find_person, read_profile

COUNTS = {
    table: f"SELECT count(*) FROM {table}"  # noqa: S608 - table names are constants
    for table in ("persons", "fragments", "identities", "events", "audiences")
}


class EmbeddedProfileStore:
    """Profiles, events and audiences in one SQLite file, stitched by an identity graph.

    Safe to share between threads: each thread uses its own connection.
    """

    name = "embedded"

    def __init__(self, path: Path, *, region: str = "US", event_limit: int = 10) -> None:
        self.path = Path(path)
        self.region = region
        self.event_limit = event_limit
        self._connections = ThreadConnections(self.path)

    def lookup(self, identities: Sequence[Identity], deadline: float) -> Profile | None:
        """The person known by the first of ``identities`` that resolves, or None."""
        with _translated("lookup"), self._connections.reading() as connection:
            _check(deadline)
            person = find_person(connection, identities, self.region)
            if person is None:
                return None
            _check(deadline)
            return read_profile(connection, person, self.event_limit)

    def ping(self) -> None:
        """Raise ``HubError`` unless the store can be opened and read."""
        with _translated("ping"):
            self._connections.get().execute("SELECT 1 FROM merged_profiles LIMIT 1").fetchall()

    def ingest(
        self,
        kind: Kind,
        lines: Iterable[str],
        *,
        dataset: str = "default",
        progress: Callable[[int], None] | None = None,
    ) -> IngestReport:
        """Load JSON Lines of ``kind``; bad lines are reported, never fatal."""
        with _translated("ingest"):
            return ingest_lines(
                self._connections, kind, lines,
                dataset=dataset, region=self.region, progress=progress,
            )

    def counts(self) -> dict[str, int]:
        """How many rows each part of the store holds."""
        with _translated("counts"), self._connections.reading() as connection:
            return {name: connection.execute(query).fetchone()[0] for name, query in COUNTS.items()}

    def close(self) -> None:
        """Close the calling thread's connection (others close as their threads end)."""
        self._connections.close()

    def __repr__(self) -> str:
        return f"EmbeddedProfileStore({str(self.path)!r}, region={self.region!r})"


def _check(deadline: float) -> None:
    if time.monotonic() > deadline:
        raise TransientError("embedded store lookup ran past its deadline")


@contextmanager
def _translated(action: str) -> Iterator[None]:
    """SQLite's and the file system's errors as the hub's own."""
    try:
        yield
    except HubError:
        raise
    except sqlite3.OperationalError as exc:
        if "locked" in str(exc) or "busy" in str(exc):
            raise TransientError(f"embedded store {action}: {exc}") from exc
        raise PermanentError(f"embedded store {action}: {exc}") from exc
    except (sqlite3.Error, OSError) as exc:
        raise PermanentError(f"embedded store {action}: {exc}") from exc
