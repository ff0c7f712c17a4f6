"""``PostgresProfileStore``: the store in PostgreSQL, shared by every server of the hub.

The store's logic is ``core.ProfileStore``'s, the same as the SQLite store's; this gives
it pooled connections (``connections.PoolConnections``) and says psycopg's errors as the
hub's: a database that is away, a connection lost, a pool exhausted, a statement
cancelled at the caller's deadline, a deadlock or a serialization failure are
``TransientError`` (trying again later may work), anything else a ``PermanentError``.

Forgetting: PostgreSQL keeps a deleted row's old version in the table's pages (and its
index entries) until VACUUM removes it, so ``forget`` ends with a plain VACUUM of the
store's tables (``PoolConnections.vacuum``), as the hub state's forget does. VACUUM
cannot remove a version that a transaction open since before the forget may still see;
the store's own transactions are short (a lookup's is bounded by its deadline).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import psycopg

from hub.ports import HubError, PermanentError, TransientError
from lookup.store.computed import ComputedAttribute
from lookup.store.core import ProfileStore
from lookup.store.ingest import Kind, Options
from lookup.store.parsing import Line
from lookup.store.postgres.bulk import bulk_ingest
from lookup.store.postgres.bundle import read_bundle
from lookup.store.postgres.connections import PoolConnections
from lookup.store.postgres.schema import DEFAULT_SCHEMA
from lookup.store.read import Bundle, Unanswered
from lookup.store.report import IngestReport

TRANSIENT = (psycopg.OperationalError, psycopg.errors.QueryCanceled,
             psycopg.errors.LockNotAvailable, psycopg.errors.DeadlockDetected,
             psycopg.errors.SerializationFailure)


class PostgresProfileStore(ProfileStore):
    """Profiles, events and audiences in PostgreSQL at ``url``, in ``schema`` (see
    ``core.ProfileStore`` for the settings). ``lookups`` and ``writes`` size the two
    connection pools (see ``connections``)."""

    def __init__(self, url: str, *, schema: str = DEFAULT_SCHEMA, lookups: int = 8,
                 writes: int = 2, **settings: Any) -> None:
        self.url = url
        self.schema = schema
        self._pools = PoolConnections(url, schema, lookups=lookups, writes=writes)
        super().__init__(self._pools, translated, **settings)

    def read_bundle(self, keys: Sequence[tuple[str, str]], since: int | None,
                    deadline: float, computed: Sequence[ComputedAttribute] = (),
                    ) -> Bundle | Unanswered | None:
        """The lookup's common case in one round trip (``postgres.bundle``)."""
        return read_bundle(self._pools, keys, since, self.event_limit, deadline, computed)

    def __repr__(self) -> str:  # the URL may hold a password: never shown
        return f"PostgresProfileStore(schema={self.schema!r}, region={self.region!r})"

    def _load(
        self, kind: Kind, lines: Iterable[Line], dataset: str, options: Options,
        progress: Callable[[int], None] | None, note: Callable[[str], None] | None,
        bulk: bool,
    ) -> IngestReport:
        """A bulk load of profiles or events is written with COPY (``bulk``)."""
        if bulk and kind in ("profiles", "events"):
            return bulk_ingest(self._pools, kind, lines, dataset=dataset, options=options,
                               progress=progress, note=note)
        return super()._load(kind, lines, dataset, options, progress, note, bulk)


@contextmanager
def translated(action: str) -> Iterator[None]:
    """psycopg's errors as the hub's own (see the module docstring)."""
    try:
        yield
    except HubError:
        raise
    except TRANSIENT as exc:  # the pool's PoolTimeout is an OperationalError
        raise TransientError(f"profile store {action}: {_said(exc)}") from exc
    except psycopg.Error as exc:
        raise PermanentError(f"profile store {action}: {_said(exc)}") from exc


def _said(exc: psycopg.Error) -> str:
    """What went wrong, without the connection string psycopg may quote."""
    return type(exc).__name__ if "postgres" in str(exc) and "://" in str(exc) else str(exc)
