"""An agent's console over real HTTP, as a browser holds it: signed in through the login form,
then its stream of server-sent events (``/console/events``) read in a thread of its own.

The cookie the login sets names no server, so one signed-in ``ConsoleSession`` can open
streams to any server of the hub (they share ``CAHUB_SECRET_KEY``), directly or through the
load balancer, with ``Last-Event-ID`` as a browser's EventSource sends it on a reconnect.
A stream is read with ``http.client`` on a socket of its own, which ``close`` shuts at once
(as a browser closing the tab), whatever the reading thread waits for.
"""

from __future__ import annotations

import codecs
import contextlib
import http.client
import json
import re
import socket
import threading
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

import requests

CSRF_META = re.compile(r'<meta name="csrf-token" content="([^"]+)"')


@dataclass(frozen=True)
class Event:
    id: str
    kind: str  # screenpop, callstate...
    data: dict[str, object]

    @property
    def call_sid(self) -> str | None:
        call = self.data.get("call")
        if isinstance(call, dict):
            return str(call.get("sid"))
        sid = self.data.get("call_sid")
        return str(sid) if sid else None


class ConsoleSession:
    """A browser signed in to the console as one agent."""

    def __init__(self, base_url: str, token: str) -> None:
        self.http = requests.Session()
        page = self.http.get(f"{base_url}/console", timeout=10)
        match = CSRF_META.search(page.text)
        assert match is not None, f"the login page carries no CSRF token:\n{page.text[:500]}"
        reply = self.http.post(f"{base_url}/console", timeout=10, allow_redirects=False,
                               data={"token": token, "csrf_token": match.group(1)})
        assert 303 == reply.status_code, (reply.status_code, reply.text[:500])

    def stream(self, base_url: str, last_event_id: str | None = None) -> EventStream:
        """Open the console's stream on ``base_url``; it answers before this returns."""
        cookie = "; ".join(f"{c.name}={c.value}" for c in self.http.cookies)
        return EventStream(base_url, cookie, last_event_id)


class EventStream:
    """One open ``/console/events``: every event it carried, in order."""

    def __init__(self, base_url: str, cookie: str, last_event_id: str | None) -> None:
        address = urlsplit(base_url)
        headers = {"Accept": "text/event-stream", "Cookie": cookie}
        if last_event_id is not None:
            headers["Last-Event-ID"] = last_event_id
        self._connection = http.client.HTTPConnection(address.hostname or "", address.port,
                                                      timeout=60)
        self._connection.request("GET", "/console/events", headers=headers)
        self._response = self._connection.getresponse()
        assert 200 == self._response.status, self._response.status
        self.events: list[Event] = []
        self.ended = False
        self.cut = False  # ended without the response's end: a reset, or closed by the test
        self._changed = threading.Condition()
        self._thread = threading.Thread(target=self._read, name="test-console", daemon=True)
        self._thread.start()

    def pops(self) -> list[Event]:
        with self._changed:
            return [event for event in self.events if event.kind == "screenpop"]

    def popped(self) -> list[str | None]:
        """The CallSid of each pop, in order."""
        with self._changed:
            return self._popped()

    def wait_for_pops(self, call_sids: list[str], timeout: float) -> list[str | None]:
        """Wait until every one of ``call_sids`` popped; the CallSids popped by then."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while not set(call_sids) <= set(self._popped()):
                left = deadline - time.monotonic()
                if left <= 0 or self.ended:
                    break
                self._changed.wait(left)
            return self._popped()

    def _popped(self) -> list[str | None]:
        return [event.call_sid for event in self.events if event.kind == "screenpop"]

    def close(self) -> None:
        sock = self._connection.sock
        if sock is not None:
            with contextlib.suppress(OSError):  # the server closed it first
                sock.shutdown(socket.SHUT_RDWR)
        self._thread.join(5)
        self._connection.close()

    def _read(self) -> None:
        buffer, text = "", codecs.getincrementaldecoder("utf-8")()
        try:
            while chunk := self._response.read1(65536):
                buffer += text.decode(chunk)
                while "\n\n" in buffer:
                    block, buffer = buffer.split("\n\n", 1)
                    self._take(block)
        except (OSError, http.client.HTTPException, ValueError):
            self.cut = True  # closed by the test, or by the server going away
        finally:
            with self._changed:
                self.ended = True
                self._changed.notify_all()

    def _take(self, block: str) -> None:
        fields: dict[str, str] = {}
        for line in block.split("\n"):
            name, _, value = line.partition(":")
            if name:  # a line starting with ":" is a comment (a keep-alive)
                fields[name] = value.removeprefix(" ")
        if "data" not in fields:
            return
        event = Event(fields.get("id", ""), fields.get("event", "message"),
                      json.loads(fields["data"]))
        with self._changed:
            self.events.append(event)
            self._changed.notify_all()
