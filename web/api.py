"""The JSON API (``/api/v1/lookup``), liveness and readiness (``/healthz``), and ``/metrics``."""

from __future__ import annotations

import hmac
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor, wait
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
    redis_check = _redis_check(hub.broker)
    checks = Checks(HEALTH_BUDGET_S, 3 + len(hub.providers) + len(hub.sinks))
    try:
        checks.start("state", lambda: {**_check(hub.calls.state.ping),
                                       "unsaved": hub.calls.state.unsaved()})
        for provider in hub.providers:
            checks.start(f"provider {provider.name}", partial(_provider_check, provider))
        for name, sink in hub.sinks.items():
            checks.start(f"sink {name}", partial(_check, sink.ping))
        if redis_check is not None:
            checks.start("redis", redis_check)
        state = checks.result("state")
        # The desk is in the same database: when that fails, asking again would only wait.
        if state["ok"]:
            checks.start("desk", partial(_check, hub.desk.store.ping))
        desk = checks.result("desk") if state["ok"] else {
            "ok": False, "error": "the hub's database cannot be reached (see state)"}
        providers = {p.name: checks.result(f"provider {p.name}") for p in hub.providers}
        sinks = {name: checks.result(f"sink {name}") for name in hub.sinks}
        redis = checks.result("redis") if redis_check is not None else None
    finally:
        checks.close()
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


class Checks:
    """Health checks run side by side, each in a thread of its own, all within one budget:
    a check that has not answered by its end is reported failing (its thread is left to end
    by itself)."""

    def __init__(self, budget_s: float, most: int) -> None:
        self._deadline = time.monotonic() + budget_s
        self._late = {"ok": False, "error": f"no answer within {int(budget_s * 1000)} ms"}
        self._pool = ThreadPoolExecutor(max_workers=most, thread_name_prefix="healthz")
        self._futures: dict[str, Future[dict[str, object]]] = {}

    def start(self, name: str, check: Callable[[], dict[str, object]]) -> None:
        self._futures[name] = self._pool.submit(check)

    def result(self, name: str) -> dict[str, object]:
        """What the check said, waited for until the budget's end at most."""
        future = self._futures[name]
        wait([future], timeout=max(0.0, self._deadline - time.monotonic()))
        return future.result() if future.done() else dict(self._late)

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


@bp.get("/metrics")
def metrics() -> Response:
    """Prometheus text format."""
    return Response(services().metrics.exposition(),
                    mimetype="text/plain; version=0.0.4; charset=utf-8")
