"""The JSON API (``/api/v1/lookup``), liveness and readiness (``/healthz``), and ``/metrics``."""

from __future__ import annotations

import hmac
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, wait
from functools import partial

from flask import Blueprint, Response, jsonify, request

from app import services
from hub.models import CallerKind
from hub.ports import ProfileProvider
from hub.summary import build_summary, caller_info
from web import json_error

bp = Blueprint("api", __name__)

# The most /healthz waits for its checks, which run side by side: a load balancer's check
# (HAProxy's `timeout check`, 3 s in deploy/haproxy.cfg) must hear within its own timeout,
# whatever a CRM or a provider does. The database's own check gives up after 1 s.
HEALTH_BUDGET_S = 1.5


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


def _redis_check(broker: object) -> Callable[[], dict[str, object]] | None:
    """When pops go through Redis, its check: its ping, and the pops held back until it
    answers."""
    ping, held = getattr(broker, "ping", None), getattr(broker, "held", None)
    if not callable(ping) or not callable(held):
        return None
    return lambda: {**_check(ping), "pops_held": held()}


@bp.get("/healthz")
def healthz() -> tuple[Response, int]:
    """Liveness plus a ping of each provider and sink, within ``HEALTH_BUDGET_S``.

    503 only when the hub cannot serve calls well: its own database cannot record a call
    (calls are still routed, but their records and deliveries wait in memory: ``state``
    counts them as ``unsaved``), the agents' desk cannot be read (a call's end, its
    after-call work and its log go through it), or every provider fails. A failing sink
    (deliveries wait in the outbox), one failing provider among several, or Redis away
    (pops wait in this server) is ``degraded``, still 200. The checks run side by side, and
    one that has not answered within the budget is reported failing, with the time waited.
    """
    hub = services()
    checks: dict[tuple[str, str], Callable[[], dict[str, object]]] = {
        ("state", ""): lambda: {**_check(hub.calls.state.ping),
                                "unsaved": hub.calls.state.unsaved()},
        ("desk", ""): lambda: _check(hub.desk.store.ping),
        **{("providers", p.name): partial(_provider_check, p) for p in hub.providers},
        **{("sinks", name): partial(_check, sink.ping) for name, sink in hub.sinks.items()},
    }
    redis_check = _redis_check(hub.broker)
    if redis_check is not None:
        checks["redis", ""] = redis_check
    results = _within_budget(checks, HEALTH_BUDGET_S)
    state, redis = results["state", ""], results.get(("redis", ""))
    if not state["ok"]:  # the desk is in the same database: its own failure would say less
        results["desk", ""] = {"ok": False,
                               "error": "the hub's database cannot be reached (see state)"}
    desk = results["desk", ""]
    providers = {name: result for (kind, name), result in results.items() if kind == "providers"}
    sinks = {name: result for (kind, name), result in results.items() if kind == "sinks"}
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


def _within_budget(checks: dict[tuple[str, str], Callable[[], dict[str, object]]],
                   budget_s: float) -> dict[tuple[str, str], dict[str, object]]:
    """Run ``checks`` side by side, each in a thread of its own; what each said, or that it
    did not answer within ``budget_s`` (its thread is left to end by itself)."""
    pool = ThreadPoolExecutor(max_workers=len(checks), thread_name_prefix="healthz")
    try:
        futures = {key: pool.submit(check) for key, check in checks.items()}
        wait(futures.values(), timeout=budget_s)
    finally:
        pool.shutdown(wait=False, cancel_futures=True)
    late = {"ok": False, "error": f"no answer within {int(budget_s * 1000)} ms"}
    return {key: future.result() if future.done() else late for key, future in futures.items()}


@bp.get("/metrics")
def metrics() -> Response:
    """Prometheus text format."""
    return Response(services().metrics.exposition(),
                    mimetype="text/plain; version=0.0.4; charset=utf-8")
