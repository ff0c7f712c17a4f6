"""The real-time ingest API: ``POST /api/v1/ingest/profiles``, ``/events``, ``/audiences``.

It takes the records ``cahub ingest`` takes, a few at a time: one JSON object
(``Content-Type: application/json``) or JSON Lines (``application/x-ndjson``, or
``application/jsonl``), loaded by the store's own ingest. So they are checked, linked and
merged as a bulk load's are, a replayed request changes nothing (records are keyed by
their identities, events by ``_id``), and a change is seen by the next lookup on every
server that shares the store. ``?dataset=`` names the dataset, as ``--dataset`` does.

What the status code says (the body is always the store's report, plus the dataset):

- 200: every record was loaded;
- 207: some were loaded, the others were rejected (``rejected`` lists each line and why):
  what was loaded stays loaded, so a client resends only the rejected lines, fixed;
- 422: no record was loaded, every one was rejected; the report comes with an ``error``;
- 400: the request is not one: an ``application/json`` body that is not UTF-8, not JSON
  or not an object, a body without a record, a bad dataset name;
- 401 (no or wrong key), 413 (a body over ``CAHUB_INGEST_MAX_BODY_BYTES``, refused from
  its ``Content-Length`` before it is read), 415 (another content type), 429 (the rate
  limits of ``web.limits``), 503 with ``Retry-After`` (the store is busy: a bulk load is
  writing).

The request path stays short: requests take turns to write (``web.ingest_turns``), wait
for theirs at most ``TURN_WAIT_S`` (about one transaction of a bulk load, so that requests
made beside one are loaded between two of its transactions), and the store waits for its
writer at most its own busy timeout; past those the answer is 503.
"""

from __future__ import annotations

import logging
import re

import orjson
from flask import Blueprint, Response, current_app, jsonify, request
from flask.blueprints import BlueprintSetupState
from werkzeug.exceptions import RequestEntityTooLarge

from app import services
from hub.greenlets import off_the_loop
from hub.ports import TransientError
from lookup.store import IngestReport, Rejection
from lookup.store.ingest import Kind
from web import json_error
from web.api import authorized
from web.body_limits import body_limit
from web.ingest_turns import StoreBusy, WriterTurns

bp = Blueprint("ingest", __name__)
log = logging.getLogger(__name__)

JSON = "application/json"
JSON_LINES = ("application/x-ndjson", "application/jsonl")
DATASET = re.compile(r"[A-Za-z0-9_.-]{1,64}")
# A bulk load writes transactions of ``ingest.COMMIT_EVERY`` (2 s) and commits them in a
# moment more: a request that waits this long is loaded between two of them.
TURN_WAIT_S = 3.0
WAITING = 8  # requests of a process that may wait for their turn at once
RETRY_AFTER_S = 2
TURNS_KEY = "cahub.ingest_turns"

Answer = tuple[Response, int]


class IngestAnswer(IngestReport):
    """The answer to an ingest request: the store's report of its lines, and its dataset."""

    dataset: str


class BadBody(ValueError):
    """A body that is not a request at all (400); ``code`` names the reason."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@bp.record_once
def _one_writer_at_a_time(state: BlueprintSetupState) -> None:
    state.app.extensions[TURNS_KEY] = WriterTurns(WAITING, TURN_WAIT_S, RETRY_AFTER_S)


@bp.post("/api/v1/ingest/<any(profiles, events, audiences):kind>")
@body_limit(lambda settings: settings.ingest_max_body_bytes)
def ingest(kind: Kind) -> Answer:
    """Load the body's records of ``kind``; see the module docstring for the answers."""
    if not authorized():
        return json_error(401, "unauthorized", "send 'Authorization: Bearer <api key>'")
    refused = _refusal()
    if refused is not None:
        return refused
    dataset = request.args.get("dataset", "default")
    try:
        lines, rejected = _records(_body())
        store = services().store
        with current_app.extensions[TURNS_KEY].turn():
            report = off_the_loop(lambda: store.ingest(kind, lines, dataset=dataset,
                                                        whole_loads=False))
    except RequestEntityTooLarge:  # a body without Content-Length, past the limit
        return _too_large()
    except BadBody as exc:
        return json_error(400, exc.code, str(exc))
    except (StoreBusy, TransientError) as exc:
        return _busy(exc)
    return _answer(report, rejected, dataset)


def _refusal() -> Answer | None:
    """Why the request is refused before its body is read, if it is."""
    if request.mimetype != JSON and request.mimetype not in JSON_LINES:
        return json_error(415, "unsupported_media_type",
                          f"send one record as {JSON}, or JSON Lines as {JSON_LINES[0]}")
    if not DATASET.fullmatch(request.args.get("dataset", "default")):
        return json_error(400, "invalid_dataset", "'dataset' must be 1 to 64 letters, digits, "
                          "'_', '.' or '-'")
    return None


def _body() -> bytes:
    """The body, bounded by the route's limit (``web.body_limits``: a body past it, chunked
    or not, raises 413 as it is read)."""
    return request.get_data(cache=False).removeprefix(b"\xef\xbb\xbf")  # a byte order mark


def _records(body: bytes) -> tuple[list[str], list[Rejection]]:
    """The body's lines for the store, and the lines rejected before it sees them."""
    if not body.strip():
        raise BadBody("empty_body", "the body holds no record")
    if request.mimetype == JSON:
        return [_one_record(body)], []
    return _json_lines(body)


def _one_record(body: bytes) -> str:
    """A JSON body as the one line the store reads; its faults are the request's."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadBody("invalid_encoding", f"the body is not UTF-8: byte 0x{body[exc.start]:02x} "
                      f"at offset {exc.start}") from None
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise BadBody("invalid_json", f"the body is not JSON: {exc.msg} at line {exc.lineno} "
                      f"column {exc.colno}") from None
    if not isinstance(value, dict):
        raise BadBody("not_an_object", f"the body is a JSON {_json_type(value)}; send one record "
                      f"(a JSON object), or JSON Lines as {JSON_LINES[0]}")
    # Outside strings a line break is only whitespace, and inside one it is escaped: without
    # them the body is the same record on one line, as the store reads records.
    return text.replace("\r", " ").replace("\n", " ")


def _json_lines(body: bytes) -> tuple[list[str], list[Rejection]]:
    """The lines as text. One that is not UTF-8 is rejected here and handed on blank (the
    store skips blank lines), so that it costs no other line and the rest keep their numbers."""
    try:
        return body.decode("utf-8").split("\n"), []
    except UnicodeDecodeError:
        pass
    lines, rejected = [], []
    for number, raw in enumerate(body.split(b"\n"), start=1):
        try:
            lines.append(raw.decode("utf-8"))
        except UnicodeDecodeError as exc:
            lines.append("")
            rejected.append(Rejection(line=number, reason=f"not UTF-8: byte 0x{raw[exc.start]:02x}"
                                                          f" at column {exc.start + 1}"))
    return lines, rejected


def _answer(report: IngestReport, rejected: list[Rejection], dataset: str) -> Answer:
    every = sorted([*rejected, *report.rejected], key=lambda rejection: rejection.line)
    answer = IngestAnswer.model_validate(
        {**report.model_dump(), "rejected": [r.model_dump() for r in every], "dataset": dataset})
    body = answer.model_dump(mode="json")
    if answer.rejected and not answer.loaded:
        error = {"code": "all_rejected",
                 "message": f"no record was loaded; {answer.rejected[0]}"}
        return jsonify({"error": error, **body}), 422
    if not answer.loaded and not answer.rejected:  # lines of white space only
        return json_error(400, "empty_body", "the body holds no record")
    return jsonify(body), 207 if answer.rejected else 200


def _too_large() -> Answer:
    limit = services().settings.ingest_max_body_bytes
    return json_error(413, "body_too_large", f"the body is over {limit:,} bytes; send fewer "
                      "records per request, or load large files with 'cahub ingest'")


def _busy(exc: Exception) -> Answer:
    # The store found busy is worth a warning; the requests refused after it, one each, not.
    level = logging.WARNING if isinstance(exc, TransientError) else logging.DEBUG
    log.log(level, "ingest refused, the store is busy: %s", exc)
    response, status = json_error(503, "store_busy", "the profile store is busy (a bulk load "
                                  f"may be writing); retry after {RETRY_AFTER_S} s")
    response.headers["Retry-After"] = str(RETRY_AFTER_S)
    return response, status


def _json_type(value: object) -> str:
    names = {list: "array", str: "string", bool: "boolean", int: "number", float: "number"}
    return names.get(type(value), "null")
