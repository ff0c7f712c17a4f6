"""The JSON API (``/api/v1/lookup``), liveness and readiness (``/healthz``), and ``/metrics``."""

from __future__ import annotations

import hmac
import time
from collections.abc import Callable

from flask import Blueprint, Response, jsonify, request

from app import services
from hub.models import CallerKind
from hub.ports import ProfileProvider
from hub.summary import build_summary, caller_info
from web import json_error

bp = Blueprint("api", __name__)


def authorized() -> bool:
    """Whether the request carries one of ``CAHUB_API_KEYS`` as its bearer token."""
    header = request.headers.get("Authorization", "")
    scheme, _, key = header.partition(" ")
    if scheme.lower() != "bearer" or not key:
        return False
    keys = services().settings.api_keys
    # Compare against every key so timing does not tell which one nearly matched.
    matches = [hmac.compare_digest(key.encode(), k.get_secret_value().encode()) for k in keys]
    return any(matches)


@bp.get("/api/v1/lookup")
def lookup() -> tuple[Response, int] | Response:
    """The summary JSON for ``?phone=``, as an agent would see it."""
    if not authorized():
        return json_error(401, "unauthorized", "send 'Authorization: Bearer <api key>'")
    raw = request.args.get("phone", "")
    hub = services()
    caller = hub.calls.classify(raw)
    if caller.kind is not CallerKind.NUMBER:
        return json_error(400, "invalid_phone", _unusable(raw, caller.kind))
    result = hub.calls.lookup(caller)
    summary = build_summary(caller_info(caller), result.identity, result.profile,
                            result.elapsed_ms, hub.settings.hub.fields)
    return jsonify(summary.to_json_dict())


def _unusable(raw: str, kind: CallerKind) -> str:
    if not raw.strip():
        return "the 'phone' query parameter is required, e.g. ?phone=%2B14155550134"
    return f"'phone' is not a usable phone number (it reads as {kind.value}); " \
           "send it in E.164, e.g. +14155550134, or in the default region's national format"


def _check(ping: Callable[[], None]) -> dict[str, object]:
    started = time.perf_counter()
    try:
        ping()
    except Exception as exc:  # a health check reports every failure, whatever its type
        return {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
    return {"ok": True, "ms": round((time.perf_counter() - started) * 1000, 3)}


def _provider_check(provider: ProfileProvider) -> dict[str, object]:
    """The ping, plus the circuit and cache state of a guarded remote provider."""
    state = getattr(provider, "state", None)
    return {**_check(provider.ping), **(state() if callable(state) else {})}


def _redis_check(broker: object) -> dict[str, object] | None:
    """When pops go through Redis: its ping, and the pops held back until it answers."""
    ping, held = getattr(broker, "ping", None), getattr(broker, "held", None)
    if not callable(ping) or not callable(held):
        return None
    return {**_check(ping), "pops_held": held()}


@bp.get("/healthz")
def healthz() -> tuple[Response, int]:
    """Liveness plus a ping of each provider and sink.

    503 only when the hub cannot serve calls well: its own database cannot record a call
    (calls are still routed, but their records and deliveries wait in memory: ``state``
    counts them as ``unsaved``), the agents' desk cannot be read (a call's end, its
    after-call work and its log go through it), or every provider fails. A failing sink
    (deliveries wait in the outbox), one failing provider among several, or Redis away
    (pops wait in this server) is ``degraded``, still 200.
    """
    hub = services()
    providers = {p.name: _provider_check(p) for p in hub.providers}
    sinks = {name: _check(sink.ping) for name, sink in hub.sinks.items()}
    state = {**_check(hub.calls.state.ping), "unsaved": hub.calls.state.unsaved()}
    # The desk is in the same database: when that fails, asking again would only wait again.
    desk = _check(hub.desk.store.ping) if state["ok"] else {
        "ok": False, "error": "the hub's database cannot be reached (see state)"}
    redis = _redis_check(hub.broker)
    failing = not (state["ok"] and desk["ok"]) or not any(c["ok"] for c in providers.values())
    degraded = not all(c["ok"] for c in [*providers.values(), *sinks.values(),
                                         *([redis] if redis else [])])
    status = "failing" if failing else "degraded" if degraded else "ok"
    # The counts come from the same database: none when it cannot be reached.
    body = {"status": status, "state": state, "desk": desk, "providers": providers,
            "sinks": sinks,
            "outbox": hub.outbox.counts() if state["ok"] else None,
            **({"redis": redis} if redis else {})}
    return jsonify(body), 503 if failing else 200


@bp.get("/metrics")
def metrics() -> Response:
    """Prometheus text format."""
    return Response(services().metrics.exposition(),
                    mimetype="text/plain; version=0.0.4; charset=utf-8")
