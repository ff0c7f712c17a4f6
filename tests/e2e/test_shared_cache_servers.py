"""Two servers of one hub, as ``create_app`` wires them: the Segment stand-in behind a
cache they share through Redis (``CAHUB_REDIS_URL``), keyed by their database's secret."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from app import close_app, create_app
from tests.standins.segment import SegmentPerson, SegmentStandIn
from tests.support import make_settings

PHONE = "+14155550134"
API = {"Authorization": "Bearer test-api-key"}


@pytest.fixture
def segment() -> Iterator[SegmentStandIn]:
    with SegmentStandIn() as standin:
        standin.add_person(SegmentPerson("use_ada", [("phone", PHONE)], {"first_name": "Ada"}))
        yield standin


@pytest.fixture
def servers(tmp_path: Path, segment: SegmentStandIn, redis_server: str,
            redis_prefix: str) -> Iterator[tuple[Flask, Flask]]:
    """Two apps on one data directory (one hub database), sharing the test's Redis prefix."""
    settings = make_settings(
        tmp_path / "instance", profile_providers=["segment"],
        segment_base_url=segment.base_url, segment_space_id=segment.space_id,
        segment_token=segment.token, redis_url=redis_server, redis_prefix=redis_prefix,
        lookup_cache_timeout_ms=100)  # the most: the machine is shared, and Redis's speed is
    # not what these test
    apps = (create_app(settings, start_background=False),
            create_app(settings, start_background=False))
    yield apps
    for app in apps:
        close_app(app)


def looked_up(app: Flask) -> Any:
    return app.test_client().get(f"/api/v1/lookup?phone=%2B{PHONE[1:]}", headers=API).json


def test_a_caller_looked_up_on_one_server_is_served_from_cache_on_the_other(
        servers: tuple[Flask, Flask], segment: SegmentStandIn) -> None:
    one, other = servers
    first = looked_up(one)
    asked = dict(segment.counts)
    second = looked_up(other)
    assert (True, "Ada") == (second["found"], second["name"])
    assert (first["name"], asked) == (second["name"], dict(segment.counts))


def test_the_other_servers_healthz_counts_the_shared_hit(
        servers: tuple[Flask, Flask]) -> None:
    one, other = servers
    looked_up(one)
    looked_up(other)
    shared = other.test_client().get("/healthz").json["providers"]["segment"]["shared_cache"]
    assert (1, 0, None) == (shared["hits"], shared["errors"], shared["last_error"])
