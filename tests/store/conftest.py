"""Fixtures for the embedded store's tests: a fresh store per test, and short ways to
load records into it and look people up."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from hub.models import Identity, Profile
from lookup.store import EmbeddedProfileStore, IngestReport

Load = Callable[..., IngestReport]
Find = Callable[[str, str], Profile | None]


@pytest.fixture
def store(tmp_path: Path) -> Iterator[EmbeddedProfileStore]:
    embedded = EmbeddedProfileStore(tmp_path / "store.db")
    yield embedded
    embedded.close()


def lines_of(*records: dict[str, Any] | str) -> list[str]:
    """JSON Lines of ``records``; strings are taken as already written lines."""
    return [r if isinstance(r, str) else json.dumps(r) for r in records]


@pytest.fixture
def load(store: EmbeddedProfileStore) -> Load:
    """``load(kind, *records, dataset=...)``: ingest records given as dicts or raw lines."""

    def load(kind: Any, *records: dict[str, Any] | str, dataset: str = "default") -> IngestReport:
        return store.ingest(kind, lines_of(*records), dataset=dataset)

    return load


@pytest.fixture
def find(store: EmbeddedProfileStore) -> Find:
    """``find(namespace, value)``: the profile known by that one identity."""

    def find(namespace: str, value: str) -> Profile | None:
        return store.lookup([Identity(namespace=namespace, id=value)], time.monotonic() + 5)

    return find
