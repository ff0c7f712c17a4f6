"""Rate limits (Flask-Limiter): console logins, the API's keys, lookups and ingests per key.

Only refused tries count (a wrong console token, a wrong API key), per client address (an
IPv6 client by its /64, the network one host is given). Once a limit is reached every try from
there is refused, the right one too, so the answer never tells a guesser which guess was right.

A contact center's agents often share one public address (a NAT), where one attacker could
use up the address's allowance for everyone. So a browser that has signed in before carries
a signed "known browser" cookie naming its last agent, and its logins count against that
agent's allowance instead of the address's: an attacker at the same address locks out only
browsers that never signed in, and cannot mint known-browser cookies without a valid token.

Counters live in memory, or in Redis when ``CAHUB_REDIS_URL`` is set, so that every server
enforces one limit. When Redis cannot be reached each server counts on its own until it
answers again: a login is never refused because the counter store is away.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import math
import time
from collections.abc import Callable

from flask import Flask, Response, current_app, request
from flask_limiter import Limiter, RateLimitExceeded
from itsdangerous import BadSignature, URLSafeTimedSerializer
from werkzeug.wrappers import Response as HttpResponse

from app import services
from hub.settings import Agent, Settings
from web import json_error
from web.api import authorized

LIMITER_KEY = "cahub.limiter"
LIMITED = ("console.log_in", "api.lookup", "ingest.ingest")
KNOWN_BROWSER_COOKIE = "cahub_known_browser"
KNOWN_BROWSER_DAYS = 30
REDIS_TIMEOUT_S = 0.5


def client_address() -> str:
    """The client's address (its /64 for IPv6), as ``proxy_hops`` proxies have forwarded it."""
    raw = request.remote_addr or ""
    try:
        address = ipaddress.ip_address(raw)
    except ValueError:
        return raw or "unknown"
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is None:
        return str(ipaddress.ip_network(f"{address}/64", strict=False))
    return str(getattr(address, "ipv4_mapped", None) or address)


def remember_browser(response: HttpResponse, agent: Agent) -> None:
    """After a good login: this browser's future logins count against ``agent``'s allowance."""
    settings = services().settings
    response.set_cookie(
        KNOWN_BROWSER_COOKIE, _known_browsers().dumps(agent.id),
        max_age=KNOWN_BROWSER_DAYS * 86400, path="/console", httponly=True, samesite="Strict",
        secure=(settings.public_base_url or "").startswith("https://"),
    )


def _known_browsers() -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(current_app.secret_key or "", salt="cahub.known-browser")


def _login_key() -> str:
    raw = request.cookies.get(KNOWN_BROWSER_COOKIE)
    if raw:
        try:
            agent_id = _known_browsers().loads(raw, max_age=KNOWN_BROWSER_DAYS * 86400)
            return f"agent:{agent_id}"
        except BadSignature:
            pass
    return f"address:{client_address()}"


def _api_key() -> str:
    """The offered API key as a keyed digest: the key itself is never stored."""
    key = request.headers.get("Authorization", "").partition(" ")[2]
    secret = str(current_app.secret_key or "").encode()
    return "key:" + hmac.new(secret, key.encode(), hashlib.sha256).hexdigest()[:24]


def _answered(status: int) -> Callable[[Response], bool]:
    return lambda response: response.status_code == status


def retry_after_s() -> int:
    """Seconds until the limit that refused this request lets a try through again."""
    limiter: Limiter = current_app.extensions[LIMITER_KEY]
    breached = limiter.current_limit
    if breached is None:
        return 60
    try:
        reset_at = breached.window.reset_time
    except Exception:  # the counter store went away: its window's length is the honest guess
        reset_at = time.time() + breached.limit.get_expiry()
    return max(1, math.ceil(reset_at - time.time()))


def _too_many(exc: RateLimitExceeded) -> tuple[Response, int]:
    wait = retry_after_s()
    response, status = json_error(429, "too_many_requests",
                                  f"{exc.description}; retry after {wait} s")
    response.headers["Retry-After"] = str(wait)
    return response, status


def _storage(settings: Settings) -> tuple[str, dict[str, str | float]]:
    if settings.redis_url is None:
        return "memory://", {}
    options: dict[str, str | float] = {"key_prefix": f"{settings.redis_prefix}ratelimit",
                                       "socket_timeout": REDIS_TIMEOUT_S,
                                       "socket_connect_timeout": REDIS_TIMEOUT_S}
    return settings.redis_url.get_secret_value(), options


def init_app(app: Flask, settings: Settings) -> None:
    """Limit the login form, the lookup API and the ingest API."""
    uri, options = _storage(settings)
    # A moving window counts exactly (a sliding-window counter lets a guess more through at
    # a window's edge); a store error is logged and the limiter falls back to memory.
    limiter = Limiter(client_address, storage_uri=uri,
                      storage_options=options,  # type: ignore[arg-type]  # redis-py takes float timeouts
                      strategy="moving-window", swallow_errors=True,
                      in_memory_fallback_enabled=True)
    limiter.init_app(app)
    app.extensions[LIMITER_KEY] = limiter
    # Only the views below are limited: other requests (webhooks above all) skip the check.
    limiter.request_filter(lambda: request.endpoint not in LIMITED)
    _limit(app, "console.log_in", limiter.limit(
        settings.console_login_limit, key_func=_login_key, deduct_when=_answered(403),
        error_message="too many refused sign-ins from here"))
    # A wrong key counts against one allowance per address, whichever API route it tried.
    wrong_keys = limiter.shared_limit(
        settings.api_auth_limit, scope="api-key-guesses", deduct_when=_answered(401),
        error_message="too many requests with a wrong API key from this address")
    for endpoint, per_key, what in (("api.lookup", settings.api_lookup_limit, "lookups"),
                                    ("ingest.ingest", settings.api_ingest_limit, "ingests")):
        _limit(app, endpoint, wrong_keys)
        _limit(app, endpoint, limiter.limit(
            per_key, key_func=_api_key, exempt_when=lambda: not authorized(),
            error_message=f"this API key's {what} are over their rate limit"))
    app.register_error_handler(RateLimitExceeded, _too_many)


def _limit(app: Flask, endpoint: str, decorator: Callable[[Callable[..., object]], object]) -> None:
    """Apply a limit to one app's view: each app has a limiter of its own."""
    # Flask types views as returning responses; the decorator keeps that, untyped.
    app.view_functions[endpoint] = decorator(app.view_functions[endpoint])  # type: ignore[assignment]
