"""The API against its OpenAPI document, with schemathesis, in process.

Schemathesis reads ``GET /api/v1/openapi.json`` from the app and sends every operation
requests made from the document: valid ones and ones that break it (a missing key, a
wrong type, a bad dataset name...). Each answer must have a documented status code and
content type and match its documented schema, and no input may make a server error.
Examples are derandomized and few, so the run is the same each time and takes seconds.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema_rs
import pytest
import schemathesis
from flask import Flask
from hypothesis import HealthCheck, settings
from schemathesis.checks import CHECKS

from app import create_app
from tests.support import make_settings
from web.ingest import JSON_LINES
from web.openapi import RECORDS, document

AUTH = {"Authorization": "Bearer test-api-key"}
# What the document promises about every answer. (Not positive_data_acceptance: the
# schemas say only what makes the store refuse a record, so a record that fits them may
# still be rejected, with its reason, for an unusable phone number or timestamp.)
CHECKED = ("not_a_server_error", "status_code_conformance", "content_type_conformance",
           "response_schema_conformance", "response_headers_conformance", "ignored_auth",
           "unsupported_method")


@schemathesis.serializer(*JSON_LINES)
def _json_lines(context: Any, value: Any) -> bytes:
    """A JSON Lines body: the document describes it as the array of its lines' records."""
    records = value if isinstance(value, list) else [value]
    return "".join(json.dumps(record) + "\n" for record in records).encode()


@pytest.fixture
def api_app(apps: list[Flask], tmp_path: Path) -> Flask:
    """An app whose rate limits leave schemathesis' hundreds of requests alone."""
    lenient = {"api_auth_limit": "100000 per minute", "api_lookup_limit": "100000 per second",
               "api_ingest_limit": "100000 per second"}
    apps.append(create_app(make_settings(tmp_path, ingest_workers=0, **lenient),
                           start_background=False))
    return apps[-1]


class TestedApp:
    """The WSGI app schemathesis calls: the app of the test that runs (the document is loaded,
    and its examples made, when tests are collected, before any app exists)."""

    app: Flask | None = None

    def __call__(self, environ: Any, start_response: Any) -> Any:
        assert self.app is not None, "the test has no app"
        return self.app(environ, start_response)


TESTED = TestedApp()
# What `schemathesis.openapi.from_wsgi` does, with the document the app serves (a test below
# checks that it is this one).
schema = schemathesis.openapi.from_dict(document())
schema.app = TESTED
# Query parameters the document does not name are ignored, as most HTTP APIs do (a client
# may send one a later version knows): not sending them keeps negative cases about the rest.
schema.config.generation.update(allow_extra_parameters=False, deterministic=True)


BUILT_IN = {check.__name__: check for check in CHECKS.get_all()}


def negative_records_rejected(ctx: Any, response: Any, case: Any) -> bool | None:
    """Schemathesis' negative_data_rejection, but for a JSON Lines body that was partly
    loaded (207): its lines are judged one by one, so each line that breaks the document's
    record schema must be among the rejected ones, while the others load."""
    if case.media_type not in JSON_LINES or response.status_code != 207:
        return BUILT_IN["negative_data_rejection"](ctx, response, case)
    record = jsonschema_rs.validator_for(RECORDS[case.path.rsplit("/", 1)[1]])
    breaking = {n for n, item in enumerate(case.body, start=1) if not record.is_valid(item)}
    rejected = {rejection["line"] for rejection in response.json()["rejected"]}
    assert breaking <= rejected, f"lines {sorted(breaking - rejected)} were loaded"
    return None


CHECKS_RUN = [*(BUILT_IN[name] for name in CHECKED), negative_records_rejected]


@schema.parametrize()
@settings(max_examples=30, derandomize=True, database=None, deadline=None,
          suppress_health_check=list(HealthCheck))
def test_the_api_keeps_to_its_document(case: Any, api_app: Flask) -> None:
    TESTED.app = api_app
    case.call_and_validate(headers=AUTH, checks=CHECKS_RUN)


def test_the_document_is_served_without_a_key(api_app: Flask) -> None:
    reply = api_app.test_client().get("/api/v1/openapi.json")

    assert (200, document()) == (reply.status_code, reply.get_json())
    assert "3.1.0" == document()["openapi"]


def test_the_document_covers_the_lookup_and_every_ingest(api_app: Flask) -> None:
    paths = api_app.test_client().get("/api/v1/openapi.json").get_json()["paths"]

    assert {"/api/v1/lookup", "/api/v1/ingest/profiles", "/api/v1/ingest/events",
            "/api/v1/ingest/audiences", "/api/v1/openapi.json"} == set(paths)
