"""What the store's modules need of a database, whichever it is.

The store's logic (``core``, ``ingest``, ``graph``, ``materialise``, ``read``,
``deletion``, ...) is written once, against these protocols: ``sqlite3.Connection``
meets ``Connection`` as it is (``connection.ThreadConnections`` hands them out), and
``postgres.dialect.PgConnection`` meets it over psycopg, translating the store's SQL
(``postgres.connections.PoolConnections`` hands them out).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from typing import Any, Protocol

Params = Sequence[Any] | Mapping[str, Any]
# A named parameter of the store's SQL (``:name``, SQLite's spelling), not a ``::cast``.
NAMED = re.compile(r"(?<![:\w]):([A-Za-z_]\w*)")


class Cursor(Protocol):
    @property
    def rowcount(self) -> int: ...

    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...

    def __iter__(self) -> Iterator[Any]: ...


class Connection(Protocol):
    """The part of ``sqlite3.Connection`` the store uses."""

    def execute(self, sql: str, parameters: Params = ..., /) -> Cursor: ...

    def executemany(self, sql: str, parameters: Iterable[Params], /) -> Cursor: ...

    @property
    def in_transaction(self) -> bool: ...

    def set_progress_handler(self, handler: Callable[[], int | None] | None, n: int, /) -> None: ...


class Connections(Protocol):
    """Transactions of one store: reads on one snapshot, serialised writes."""

    def reading(self, deadline: float | None = None) -> AbstractContextManager[Connection]: ...

    def writing(self) -> AbstractContextManager[Connection]: ...

    def bulk(self) -> AbstractContextManager[object]: ...

    def vacuum(self) -> None: ...

    def close(self) -> None: ...
