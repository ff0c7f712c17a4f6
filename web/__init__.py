"""The HTTP surface (PRODUCT.md §6), an entry point: blueprints, JSON errors and request metrics.

Handlers only turn a request into a call of a use case and its answer into a response.
"""

from __future__ import annotations

import time

from flask import Flask, Response, g, jsonify, request
from werkzeug.exceptions import HTTPException


def json_error(status: int, code: str, message: str) -> tuple[Response, int]:
    """The one error shape: ``{"error": {"code": ..., "message": ...}}``."""
    return jsonify({"error": {"code": code, "message": message}}), status


def _http_error(exc: HTTPException) -> tuple[Response, int] | HTTPException:
    if request.path.startswith("/twilio/"):
        return exc  # Twilio routes answer what Twilio expects, set by their own handlers
    code = (exc.name or "error").lower().replace(" ", "_")
    response, status = json_error(exc.code or 500, code, exc.description or code)
    # The exception's own headers, such as a 405's Allow (RFC 9110 requires it).
    response.headers.extend((k, v) for k, v in exc.get_headers() if k.lower() != "content-type")
    return response, status


def _start_timer() -> None:
    g.cahub_started = time.perf_counter()


def _count_request(response: Response) -> Response:
    started = g.get("cahub_started")
    route = request.url_rule.rule if request.url_rule else "unmatched"
    if started is not None:
        from app import services  # here: gunicorn's master imports web, and app, never

        metrics = services().metrics
        metrics.requests.labels(route, str(response.status_code)).inc()
        metrics.request_seconds.labels(route).observe(time.perf_counter() - started)
    return response


def init_app(app: Flask) -> None:
    """Register every blueprint and the app-wide handlers."""
    from app import services
    from web import body_limits, limits, sessions, simulator
    from web.api import bp as api_bp
    from web.console import bp as console_bp
    from web.console import init_app as count_console_streams
    from web.desk import bp as desk_bp
    from web.ingest import bp as ingest_bp
    from web.openapi import bp as openapi_bp
    from web.softphone import bp as softphone_bp
    from web.twilio import bp as twilio_bp

    settings = services(app).settings
    body_limits.init_app(app, settings)
    count_console_streams(app)
    for blueprint in (twilio_bp, api_bp, ingest_bp, openapi_bp, console_bp, softphone_bp,
                      desk_bp):
        app.register_blueprint(blueprint)
    sessions.init_app(app, settings)
    simulator.init_app(app)
    limits.init_app(app, settings)
    app.register_error_handler(HTTPException, _http_error)
    app.before_request(_start_timer)
    app.after_request(_count_request)
