"""Agent consoles over real connections, for tests that serve the hub as a process: the demo
data and an agent to sign in as, the console's sign-in, and event streams read by one
selector."""

from __future__ import annotations

import re
import selectors
import socket
import time
from pathlib import Path

import requests

from lookup.demo import load_demo
from lookup.store import EmbeddedProfileStore

AGENT_TOKEN = "served-console-agent-token"
TO = "+18005550100"  # the number grace takes
CONFIG = f"""
[[agents]]
id = "grace"
name = "Grace Hopper"
client = "grace"
numbers = ["{TO}"]
token = "{AGENT_TOKEN}"
"""
CSRF_META = re.compile(r'<meta name="csrf-token" content="([^"]+)"')


def demo_hub(tmp_path: Path, auth_token: str) -> dict[str, str]:
    """Settings of a hub on the demo data in ``tmp_path``, whose agent grace takes ``TO``."""
    data_dir = tmp_path / "instance"
    store = EmbeddedProfileStore(data_dir / "profiles.sqlite3")
    load_demo(store)
    store.close()
    config = tmp_path / "hub.toml"
    config.write_text(CONFIG)
    return {"CAHUB_DATA_DIR": str(data_dir), "CAHUB_CONFIG": str(config),
            "CAHUB_TWILIO_AUTH_TOKEN": auth_token, "CAHUB_SECRET_KEY": "served-consoles"}


def console_cookie(base: str) -> str:
    """The session cookie of a signed-in console, as a browser signs in."""
    session = requests.Session()
    page = session.get(f"{base}/console", timeout=5).text
    csrf = CSRF_META.search(page)
    assert csrf is not None, page
    reply = session.post(f"{base}/console", data={"token": AGENT_TOKEN, "csrf_token": csrf[1]},
                         allow_redirects=False, timeout=5)
    assert 303 == reply.status_code
    return "; ".join(f"{name}={value}" for name, value in session.cookies.items())


class Consoles:
    """Event streams of one agent, all read by one selector: what each has received."""

    def __init__(self, base: str, cookie: str, count: int) -> None:
        host, port = base.removeprefix("http://").split(":")
        request = (f"GET /console/events HTTP/1.1\r\nHost: {host}:{port}\r\n"
                   f"Accept: text/event-stream\r\nCookie: {cookie}\r\n\r\n").encode()
        self.selector = selectors.DefaultSelector()
        self.received: dict[int, bytearray] = {}
        for _ in range(count):
            sock = socket.create_connection((host, int(port)), timeout=5)
            sock.sendall(request)
            sock.setblocking(False)
            self.selector.register(sock, selectors.EVENT_READ)
            self.received[sock.fileno()] = bytearray()

    def read_for(self, seconds: float) -> None:
        """Take in whatever the streams send for ``seconds``."""
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            for key, _ in self.selector.select(left):
                chunk = key.fileobj.recv(65536)  # type: ignore[union-attr]
                self.received[key.fd] += chunk

    def open(self) -> int:
        """How many streams were answered 200 as event streams."""
        return sum(data.startswith(b"HTTP/1.1 200") and b"text/event-stream" in data
                   for data in self.received.values())

    def that_got(self, sid: str) -> int:
        return sum(sid.encode() in data for data in self.received.values())

    def close(self) -> None:
        for key in list(self.selector.get_map().values()):
            key.fileobj.close()  # type: ignore[union-attr]
        self.selector.close()
