"""Fixtures for the embedded store's tests: a fresh store per test (or one built with other
settings), and short ways to load records into it and look people up."""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest

from hub.models import AmbiguousMatch, Identity, Profile
from lookup.store import EmbeddedProfileStore, IngestReport, ingest

Load = Callable[..., IngestReport]
Find = Callable[[str, str], Profile | AmbiguousMatch | None]
TABLES = ("persons", "identities", "shared_links", "fragments", "events", "audiences", "meta")


@pytest.fixture(autouse=True, params=["whole loads", "chunks"])
def profile_writer(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Every test of the store runs twice: its loads of profiles linked and written as
    whole loads (``load_graph``, ``bulk_write``), however few lines they hold, then
    chunk by chunk, as loads of up to ``ingest.WHOLE_LOAD_AFTER`` lines are."""
    whole = request.param == "whole loads"
    monkeypatch.setattr(ingest, "WHOLE_LOAD_AFTER", 0 if whole else 1 << 62)
    return str(request.param)


@pytest.fixture
def make_store(tmp_path: Path) -> Iterator[Callable[..., EmbeddedProfileStore]]:
    """``make_store(**settings)``: a store in a fresh file, closed after the test."""
    made: list[EmbeddedProfileStore] = []

    def make(**settings: Any) -> EmbeddedProfileStore:
        store = EmbeddedProfileStore(tmp_path / f"store-{len(made)}.db", **settings)
        made.append(store)
        return store

    yield make
    for store in made:
        store.close()


@pytest.fixture
def store(make_store: Callable[..., EmbeddedProfileStore]) -> EmbeddedProfileStore:
    return make_store()


def lines_of(*records: dict[str, Any] | str) -> list[str]:
    """JSON Lines of ``records``; strings are taken as already written lines."""
    return [r if isinstance(r, str) else json.dumps(r) for r in records]


def _loader(store: EmbeddedProfileStore) -> Load:

    def load(kind: Any, *records: dict[str, Any] | str, dataset: str = "default") -> IngestReport:
        return store.ingest(kind, lines_of(*records), dataset=dataset)

    return load


def _finder(store: EmbeddedProfileStore) -> Find:

    def find(namespace: str, value: str) -> Profile | AmbiguousMatch | None:
        return store.lookup([Identity(namespace=namespace, id=value)], time.monotonic() + 5)

    return find


@pytest.fixture
def load(store: EmbeddedProfileStore) -> Load:
    """``load(kind, *records, dataset=...)``: ingest records given as dicts or raw lines."""
    return _loader(store)


@pytest.fixture
def find(store: EmbeddedProfileStore) -> Find:
    """``find(namespace, value)``: what the store returns for that one identity."""
    return _finder(store)


@pytest.fixture
def load_into() -> Callable[[EmbeddedProfileStore], Load]:
    """``load_into(store)``: the ``load`` of another store."""
    return _loader


@pytest.fixture
def find_in() -> Callable[[EmbeddedProfileStore], Find]:
    """``find_in(store)``: the ``find`` of another store."""
    return _finder


@pytest.fixture
def rows_of() -> Callable[[EmbeddedProfileStore], dict[str, list[tuple[Any, ...]]]]:
    """``rows_of(store)``: every row of every table of the store, read from the file."""

    def rows_of(store: EmbeddedProfileStore) -> dict[str, list[tuple[Any, ...]]]:
        uri = f"{store.path.as_uri()}?mode=ro"
        with closing(sqlite3.connect(uri, uri=True)) as connection:
            return {
                table: connection.execute(f"SELECT * FROM {table}").fetchall()  # noqa: S608 - table names are constants
                for table in TABLES
            }

    return rows_of
