"""The data directory and its files are the hub's alone: 0700 for the directory, 0600 for files.

They hold personal data (profiles, call summaries, delivery payloads) and the demo's secrets.
SQLite creates a database file 0644 and gives its -wal, -shm and -journal files the mode of
the database file, so the hub makes the database file owner-only as soon as SQLite has
opened it, before any statement runs: every file SQLite adds then follows, in whichever
process (the CLI, a server worker) adds it. (Changing the mode by name, never by opening the
file: closing any descriptor of a database file drops every lock SQLite holds on it in the
process.) The directory is owner-only from the start, so nobody else reaches the file in
the moment before. A directory or file found looser, as an earlier version left it, is
tightened with a warning: nothing but the hub needs to read them, and the warning tells an
operator who relied on a group's access what changed.
"""

from __future__ import annotations

import contextlib
import logging
import os
import stat
from pathlib import Path

log = logging.getLogger(__name__)
OWNER_ONLY_DIRECTORY = 0o700
OWNER_ONLY_FILE = 0o600
OPEN_TO_OTHERS = 0o077
SQLITE_COMPANIONS = ("-wal", "-shm", "-journal")


def private_directory(path: Path) -> Path:
    """``path``, made if missing (with its parents), accessible to its owner alone."""
    path.mkdir(mode=OWNER_ONLY_DIRECTORY, parents=True, exist_ok=True)
    _tighten(path)
    return path


def private_database(path: Path, *, new: bool) -> None:
    """Make the SQLite file ``path`` and its companions owner-only: call it once SQLite has
    opened (and so created) the file, before the first statement. ``new``: SQLite has just
    created it (0644, as it always does), which needs no warning."""
    for companion in (path, *(path.with_name(path.name + end) for end in SQLITE_COMPANIONS)):
        # Another connection's transaction may remove its -journal at any moment: a
        # companion gone before it is read needs no tightening.
        with contextlib.suppress(FileNotFoundError):
            _tighten(companion, warn=not new)


def write_private_text(path: Path, text: str) -> None:
    """Write a new file that is owner-only from its first byte (no window at 0644)."""
    private_directory(path.parent)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, OWNER_ONLY_FILE)
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        handle.write(text)


def _tighten(path: Path, *, warn: bool = True) -> None:
    mode = stat.S_IMODE(path.stat().st_mode)
    if not mode & OPEN_TO_OTHERS:
        return
    try:
        path.chmod(mode & ~OPEN_TO_OTHERS)
    except FileNotFoundError:
        return  # removed meanwhile (a -journal at the end of a transaction)
    except OSError as exc:
        log.warning("%s is readable by others (mode %o) and could not be tightened (%s): "
                    "it holds personal data; make it owner-only", path, mode, exc.strerror)
        return
    if warn:
        log.warning("%s was readable by others (mode %o); it holds personal data, so it is "
                    "now %o", path, mode, mode & ~OPEN_TO_OTHERS)
