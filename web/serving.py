"""Where the hub may be served: the start-up check shared by ``cahub serve``, ``cahub demo``
and gunicorn's shipped configuration.

Twilio signs the exact URL it calls. Without ``CAHUB_PUBLIC_BASE_URL`` the hub can only check
a signature against the URL the request itself names, built from its Host header, which
anyone who reaches the server chooses: a request signed for another URL of the account
could then be replayed here. On loopback that is the developer's own machine. Anywhere else
(another interface, all of them, a Unix socket behind a proxy, an inherited descriptor) the
hub refuses to start until the URL is set. There is no switch to serve anyway: whoever
serves beyond loopback knows the URL clients use, and setting it is always the safe answer.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from werkzeug.serving import WSGIRequestHandler

LOCALHOST = "localhost"


def signature_url_problem(addresses: Iterable[str], public_base_url: str | None) -> str | None:
    """Why serving on ``addresses`` is unsafe with this public URL, in one line; else None.

    An address is a host (``0.0.0.0``, ``::1``), a ``host:port`` (``[::1]:5000``), or a
    gunicorn bind such as ``unix:/run/hub.sock`` or ``fd://3``.
    """
    if public_base_url:
        return None
    exposed = next((address for address in addresses if not is_loopback(address)), None)
    if exposed is None:
        return None
    return (f"refusing to serve on {exposed} without CAHUB_PUBLIC_BASE_URL: webhook "
            "signatures would be checked against whatever Host header a request sends; set "
            "it to the URL Twilio calls (such as https://hub.example.com)")


def is_loopback(address: str) -> bool:
    """Whether ``address`` (a host, or ``host:port``) is reachable from this machine only."""
    host = _host(address)
    if host == LOCALHOST:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a name other than localhost, a socket path, a descriptor


def _host(address: str) -> str:
    if address.startswith("["):  # [::1]:5000
        return address[1:].partition("]")[0]
    if address.count(":") == 1:  # host:port, or unix:/path (not an address: not loopback)
        return address.partition(":")[0]
    return address  # a bare host, IPv6 included


def development_handler(timeout_s: float) -> type[WSGIRequestHandler]:
    """The development server's request handler, with each wait on a client's socket bounded.

    werkzeug waits for a request's headers for ever (a thread each); with ``timeout`` set,
    a client silent that long is dropped. The body's own time is the app's (``web.body_limits``).
    """
    return type("BoundedRequestHandler", (WSGIRequestHandler,), {"timeout": timeout_s})
