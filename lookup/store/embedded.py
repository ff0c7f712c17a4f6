"""``EmbeddedProfileStore``: the store in one SQLite file, the hub's default.

The store's logic is ``core.ProfileStore``'s; this gives it per-thread SQLite
connections (``connection.ThreadConnections``) and says SQLite's errors as the hub's: a
busy or locked database is a ``TransientError``, anything else (the file system's
errors too) a ``PermanentError``.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from hub.ports import HubError, PermanentError, TransientError
from lookup.store.connection import ThreadConnections
from lookup.store.core import ProfileStore


class EmbeddedProfileStore(ProfileStore):
    """Profiles, events and audiences in one SQLite file (see ``core.ProfileStore`` for
    the settings); each thread uses its own connection."""

    def __init__(self, path: Path, **settings: Any) -> None:
        self.path = Path(path)
        super().__init__(ThreadConnections(self.path), translated, **settings)

    def __repr__(self) -> str:
        return f"EmbeddedProfileStore({str(self.path)!r}, region={self.region!r})"


@contextmanager
def translated(action: str) -> Iterator[None]:
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
