"""The API's OpenAPI 3.1 document, served without a key at ``GET /api/v1/openapi.json``.

Written here, next to the routes it describes, with the response schemas generated from
the pydantic models the routes answer with (``Summary``, ``IngestAnswer``, the error), so
that a field added to one of them is in the document at once. The paths, parameters and
status codes are written by hand: an API framework would derive them from the views, but
it would also validate the request bodies itself, and an ingest body is checked record by
record by the store, which rejects a line with its reason and loads the others. The
request schemas therefore say only what the store refuses a record for; everything else
it checks (a usable identity, a parseable timestamp...) is in their descriptions. The
implementation is tested against this document with schemathesis
(``tests/web/test_openapi.py``): status codes, content types, response schemas, and no
input that makes a server error.

OpenAPI 3.1 has no way yet to describe JSON Lines (3.2 adds ``itemSchema``): as the
Elasticsearch specification does for its bulk API, a JSON Lines body is described as the
array of its lines' records.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from flask import Blueprint, Response, jsonify
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from hub.models import Summary
from web.ingest import JSON, JSON_LINES, TURN_WAIT_S, IngestAnswer

bp = Blueprint("openapi", __name__)

Schema = dict[str, Any]
REF = "#/components/schemas/{model}"


class ErrorDetail(BaseModel):
    code: str
    message: str


class ErrorBody(BaseModel):
    """Every error of the API: ``{"error": {"code": ..., "message": ...}}``."""

    error: ErrorDetail


@bp.get("/api/v1/openapi.json")
def openapi() -> Response:
    """The document (no key needed: it holds nothing but the API's shape)."""
    return jsonify(document())


IDENTITY_MAP: Schema = {
    "type": "object", "minProperties": 1,
    "description": "Identities by namespace: `{\"Phone\": [{\"id\": \"(415) 555-0134\", "
                   "\"primary\": true}], \"Email\": [{\"id\": \"ada@example.com\"}]}`. Phone "
                   "numbers (`Phone`, `Phone_E.164`, `mobilePhone`) may be written in any form "
                   "and are stored in E.164; a record needs at least one usable identity.",
}
RECORDS: dict[str, Schema] = {
    "profiles": {
        "type": "object", "required": ["identityMap"], "properties": {"identityMap": IDENTITY_MAP},
        "description": "An XDM profile record: `identityMap`, any attributes (`person`, "
                       "`personalEmail`, `loyalty`, `_cah`...), optionally `segmentMembership` "
                       "and `_repo.lastModifiedDate`.",
    },
    "events": {
        "type": "object", "required": ["_id", "timestamp", "eventType", "identityMap"],
        "properties": {
            "_id": {"type": "string", "pattern": r"\S", "description": "replaying it changes "
                                                                      "nothing"},
            "timestamp": {"type": "string", "description": "ISO 8601 with a time zone"},
            "eventType": {"type": "string", "pattern": r"\S"},
            "identityMap": IDENTITY_MAP,
        },
        "description": "An XDM experience event, with its fields (`commerce`, "
                       "`productListItems`, `marketing`, `web`...).",
    },
    "audiences": {
        "type": "object", "required": ["id", "name"],
        "properties": {"id": {"type": "string", "pattern": r"\S"},
                       "name": {"type": "string", "pattern": r"\S"},
                       "description": {"type": ["string", "null"]}},
        "description": "An audience definition.",
    },
}


ADA_PHONE = {"Phone": [{"id": "(415) 555-0134", "primary": True}]}
EXAMPLES: dict[str, list[Schema]] = {
    "profiles": [
        {"identityMap": {**ADA_PHONE, "Email": [{"id": "ada@example.com"}]},
         "person": {"name": {"firstName": "Ada", "lastName": "Lovelace"}},
         "loyalty": {"tier": "gold"}, "_repo": {"lastModifiedDate": "2026-11-20T10:00:00Z"}},
        {"identityMap": {"Phone": [{"id": "+1 202 555 0199", "primary": True}]},
         "person": {"name": {"fullName": "Grace Hopper"}}},
    ],
    "events": [
        {"_id": "order-1001", "timestamp": "2026-11-20T10:00:00Z",
         "eventType": "commerce.purchases", "identityMap": ADA_PHONE,
         "productListItems": [{"name": "Trail Shoe", "quantity": 2, "priceTotal": 240.0,
                               "currencyCode": "USD"}]},
        {"_id": "view-1002", "timestamp": "2026-11-20T09:30:00+01:00",
         "eventType": "commerce.productViews", "identityMap": ADA_PHONE,
         "productListItems": [{"name": "Headlamp"}]},
    ],
    "audiences": [{"id": "vip", "name": "VIP", "description": "Lifetime value over 1,000"},
                  {"id": "winter-sale", "name": "Winter Sale 2026"}],
}
UNLOADABLE = {"person": {"name": {"fullName": "No identity"}}}


@cache
def document() -> Schema:
    """The whole document."""
    return {
        "openapi": "3.1.0",
        "info": {"title": "Customer Activity Hub API", "version": "1",
                 "description": "Caller lookups and the real-time ingest of profiles, events "
                                "and audiences. Every error is "
                                '`{"error": {"code": "...", "message": "..."}}`.'},
        "paths": {
            "/api/v1/lookup": {"get": _lookup()},
            **{f"/api/v1/ingest/{kind}": {"post": _ingest(kind)} for kind in RECORDS},
            "/api/v1/openapi.json": {"get": {
                "summary": "This document", "operationId": "openapi", "security": [],
                "responses": {"200": {"description": "the OpenAPI document",
                                      "content": {JSON: {"schema": {"type": "object"}}}}}}},
        },
        "components": {
            "schemas": _model_schemas(Summary, IngestAnswer, ErrorBody),
            "securitySchemes": {"apiKey": {"type": "http", "scheme": "bearer",
                                           "description": "a key of CAHUB_API_KEYS"}},
        },
        "security": [{"apiKey": []}],
    }


def _lookup() -> Schema:
    return {
        "summary": "The summary of a caller, as an agent would see it", "operationId": "lookup",
        "parameters": [{"name": "phone", "in": "query", "required": True,
                        "description": "E.164, or national in CAHUB_DEFAULT_REGION",
                        "schema": {"type": "string"}, "example": "+14155550134"}],
        "responses": {
            "200": _json("the summary (PRODUCT.md §7)", _ref("Summary")),
            "400": _error("not a usable phone number"),
            **_refusals(),
        },
    }


def _ingest(kind: str) -> Schema:
    record = RECORDS[kind]
    report = _ref("IngestAnswer")
    return {
        "summary": f"Load {kind}, one record or a few", "operationId": f"ingest_{kind}",
        "description": f"The records `cahub ingest {kind}` takes. Records are keyed as in a "
                       "bulk load, so a replayed request changes nothing. For bulk loads use "
                       "`cahub ingest`: the body is limited to CAHUB_INGEST_MAX_BODY_BYTES "
                       "(1 MiB by default).",
        "parameters": [{"name": "dataset", "in": "query", "required": False,
                        "description": "the dataset, as `cahub ingest --dataset` names it",
                        "schema": {"type": "string", "pattern": "^[A-Za-z0-9_.-]{1,64}$",
                                   "default": "default"}}],
        "requestBody": {"required": True, "content": {
            JSON: {"schema": record, "examples": {"one": {"value": EXAMPLES[kind][0]}}},
            **{media: {"schema": {"type": "array", "minItems": 1, "items": record,
                                  "description": "JSON Lines: one record a line"},
                       "examples": _json_lines_examples(kind)}
               for media in JSON_LINES},
        }},
        "responses": {
            "200": _json("every record was loaded", report),
            "207": _json("some records were loaded; `rejected` lists the others, with their "
                         "line and reason", report),
            "400": _error("not a request: a JSON body that is not UTF-8, not JSON or not an "
                          "object, no record, a bad dataset name"),
            "413": _error("the body is over CAHUB_INGEST_MAX_BODY_BYTES"),
            "415": _error("neither application/json nor JSON Lines"),
            "422": _json("no record was loaded: every one was rejected",
                         {"allOf": [report, _ref("ErrorBody")]}),
            **_refusals(),
            "503": _error(f"the store is busy (a bulk load is writing), or another ingest held "
                          f"it over {TURN_WAIT_S:g} s: retry after Retry-After",
                          retry_after=True),
        },
    }


def _json_lines_examples(kind: str) -> Schema:
    return {"all": {"summary": "every line loads (200)", "value": EXAMPLES[kind]},
            "partly": {"summary": "the second line is rejected, the others load (207)",
                       "value": [EXAMPLES[kind][0], UNLOADABLE, EXAMPLES[kind][1]]}}


def _refusals() -> dict[str, Schema]:
    return {"401": _error("no API key, or a wrong one"),
            "429": _error("over a rate limit", retry_after=True)}


def _json(description: str, schema: Schema) -> Schema:
    return {"description": description, "content": {JSON: {"schema": schema}}}


def _error(description: str, *, retry_after: bool = False) -> Schema:
    answer = _json(description, _ref("ErrorBody"))
    if retry_after:
        answer["headers"] = {"Retry-After": {"required": True, "description": "seconds",
                                             "schema": {"type": "string", "pattern": "^[0-9]+$"}}}
    return answer


def _ref(model: str) -> Schema:
    return {"$ref": REF.format(model=model)}


def _model_schemas(*models: type[BaseModel]) -> dict[str, Schema]:
    """The JSON Schemas of ``models`` as they are serialised, and of the models they hold."""
    _, schemas = models_json_schema([(model, "serialization") for model in models],
                                    ref_template=REF)
    definitions: dict[str, Schema] = schemas["$defs"]
    return definitions
