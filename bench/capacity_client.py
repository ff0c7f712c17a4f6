"""The load client of ``bench.capacity``: thousands of agent consoles and paced, signed
webhooks, on one asyncio event loop (aiohttp), in a process apart from the servers.

- **Logins.** Every agent signs in as a browser does (the login page, then its form with the
  page's CSRF token), on the server its console will be opened on; the session cookie is
  kept and sent by hand (no cookie jar: thousands of agents share one client).
- **Consoles.** One ``GET /console/events`` per agent, held open; each ``screenpop`` event's
  arrival is noted by its CallSid (first arrival only). A stream that ends or fails before
  the client closes it counts as dropped.
- **Calls.** Signed inbound-call webhooks, sent on a fixed schedule whatever the answers
  (an open loop, as Twilio sends them), each with a timeout: a server that stops answering
  shows as "no answer within N s" rather than as a slower client.
- **The client's own delay.** While calls are sent, a timer notes how late the event loop
  wakes it: the client's part of every latency it measures.
"""

from __future__ import annotations

import asyncio
import json
import resource
import time
from dataclasses import dataclass, field

import aiohttp

from bench.webhook import CSRF_META
from integrations.simulate import inbound_call_form, new_call_sid
from integrations.twilio import sign

COOKIE = "cahub_console"
ACCOUNT_SID = "AC" + "0" * 32
LOGINS_AT_ONCE = 16  # concurrent sign-ins (per client; they share both servers)
OPENS_AT_ONCE = 200  # concurrent console opens
LAG_TICK_S = 0.005
KEEPALIVE_S = 1.0


@dataclass
class Agent:
    """One agent of the hub's configuration, as the client drives it."""

    index: int
    token: str
    number: str  # the Twilio number routed to this agent
    home: int  # the server its console is opened on
    cookie: str | None = None


@dataclass
class Console:
    """One open console stream."""

    agent: Agent
    task: asyncio.Task[None] | None = None
    opened: asyncio.Event = field(default_factory=asyncio.Event)
    status: int | None = None
    ended: str | None = None  # why the stream ended before the client closed it
    closing: bool = False


@dataclass
class Call:
    sid: str
    agent: Agent
    server: int
    sent: float
    answered: float | None = None
    status: int | None = None
    routed: bool = False  # the TwiML dials the intended agent
    found: bool = False  # the TwiML carries the caller's profile (looked up in time)
    error: str | None = None


@dataclass(frozen=True)
class LoadResult:
    """One load's calls, with the client's own figures."""

    calls: list[Call]
    lag_ms: list[float]
    client_cpu_s: float
    seconds: float  # from the first call sent to the last answer
    sending_s: float  # from the first call sent to the last


class Client:
    """Consoles and calls against ``bases`` (one URL per server)."""

    def __init__(self, bases: list[str], auth_token: str, callers: list[str]) -> None:
        self.bases = bases
        self.auth_token = auth_token
        self.callers = callers  # the callers' numbers, taken in turn
        self.calls_made = 0
        self.arrived: dict[str, float] = {}  # CallSid -> first screenpop's arrival
        self.consoles: dict[int, Console] = {}
        jar = aiohttp.DummyCookieJar()
        self.streams = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=0, force_close=True), cookie_jar=jar,
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=30, sock_read=None))
        # An idle connection is dropped well before a server may close it (gunicorn's
        # keep-alive: 2 to 5 s), so that no call is sent on one the server is closing.
        self.requests = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=0, keepalive_timeout=KEEPALIVE_S),
            cookie_jar=aiohttp.DummyCookieJar())

    async def close(self) -> None:
        for console in self.consoles.values():
            console.closing = True
            if console.task is not None:
                console.task.cancel()
        await asyncio.gather(*(c.task for c in self.consoles.values() if c.task is not None),
                             return_exceptions=True)
        await self.streams.close()
        await self.requests.close()

    # -- logins ------------------------------------------------------------------------------

    async def log_in(self, agents: list[Agent]) -> float:
        """Sign every agent in on its home server; seconds it took."""
        started = time.perf_counter()
        forms = [await self._login_form(base) for base in self.bases]
        limit = asyncio.Semaphore(LOGINS_AT_ONCE)

        async def one(agent: Agent) -> None:
            cookie, csrf = forms[agent.home]
            async with limit:
                for attempt in range(3):
                    try:
                        agent.cookie = await self._sign_in(agent, cookie, csrf)
                        return
                    except (aiohttp.ClientError, TimeoutError):
                        if attempt == 2:
                            raise
                        await asyncio.sleep(1)

        await asyncio.gather(*(one(agent) for agent in agents))
        return time.perf_counter() - started

    async def _login_form(self, base: str) -> tuple[str, str]:
        """The cookie and CSRF token of a login page (one serves every sign-in: the token
        is the session's, and signing in replaces the session)."""
        async with self.requests.get(f"{base}/console",
                                     timeout=aiohttp.ClientTimeout(total=30)) as reply:
            page = await reply.text()
            csrf = CSRF_META.search(page)
            if csrf is None or COOKIE not in reply.cookies:
                raise RuntimeError(f"{base}/console gave no login form ({reply.status})")
            return reply.cookies[COOKIE].value, csrf.group(1)

    async def _sign_in(self, agent: Agent, cookie: str, csrf: str) -> str:
        async with self.requests.post(
                f"{self.bases[agent.home]}/console", data={"token": agent.token,
                                                           "csrf_token": csrf},
                headers={"Cookie": f"{COOKIE}={cookie}"}, allow_redirects=False,
                timeout=aiohttp.ClientTimeout(total=30)) as reply:
            await reply.read()
            if reply.status != 303 or COOKIE not in reply.cookies:
                raise RuntimeError(f"agent {agent.index}'s login answered {reply.status}")
            return reply.cookies[COOKIE].value

    # -- consoles ----------------------------------------------------------------------------

    async def open_consoles(self, agents: list[Agent], timeout_s: float) -> tuple[int, int, int]:
        """Open a console for each agent, ``OPENS_AT_ONCE`` at a time, each given
        ``timeout_s`` to answer with its headers. Once one has not, no further one is tried
        (the server is not taking streams). Returns (opened, refused or unanswered, untried)."""
        limit = asyncio.Semaphore(OPENS_AT_ONCE)
        stuck = asyncio.Event()
        results = {"opened": 0, "failed": 0, "untried": 0}

        async def one(agent: Agent) -> None:
            async with limit:
                if stuck.is_set():
                    results["untried"] += 1
                    return
                console = Console(agent)
                console.task = asyncio.create_task(self._listen(console))
                self.consoles[agent.index] = console
                try:
                    await asyncio.wait_for(console.opened.wait(), timeout_s)
                except TimeoutError:
                    stuck.set()
                if console.status == 200 and console.ended is None:
                    results["opened"] += 1
                    return
                results["failed"] += 1
                console.closing = True
                console.task.cancel()
                del self.consoles[agent.index]

        await asyncio.gather(*(one(agent) for agent in agents))
        return results["opened"], results["failed"], results["untried"]

    async def _listen(self, console: Console) -> None:
        agent = console.agent
        url = f"{self.bases[agent.home]}/console/events"
        event = ""
        try:
            async with self.streams.get(url, headers={"Cookie": f"{COOKIE}={agent.cookie}"}
                                        ) as reply:
                console.status = reply.status
                console.opened.set()
                if reply.status != 200:
                    console.ended = f"answered {reply.status}"
                    return
                async for raw in reply.content:
                    line = raw.decode().rstrip("\r\n")
                    if line.startswith("event:"):
                        event = line[6:].strip()
                    elif line.startswith("data:") and event == "screenpop":
                        sid = json.loads(line[5:])["call"]["sid"]
                        self.arrived.setdefault(sid, time.perf_counter())
                    elif not line:
                        event = ""
            if not console.closing:
                console.ended = "closed by the server"
        except asyncio.CancelledError:
            if not console.closing:
                console.ended = "cancelled"
            raise
        except (aiohttp.ClientError, OSError, ValueError) as exc:
            if not console.closing:
                console.ended = f"{type(exc).__name__}: {exc}"
        finally:
            console.opened.set()

    def dropped(self) -> list[str]:
        """Why each console that had opened has ended since (none should have)."""
        return [c.ended for c in self.consoles.values() if c.ended is not None]

    # -- calls -------------------------------------------------------------------------------

    async def probe(self, server: int, agent: Agent, timeout_s: float) -> Call:
        """One signed webhook to ``server``; its outcome."""
        return await self._call(server, agent, timeout_s)

    async def load(self, plan: list[tuple[int, Agent]], rate: float,
                   timeout_s: float) -> LoadResult:
        """Send one webhook per ``(server, agent)`` of ``plan`` at ``rate`` per second."""
        lag: list[float] = []
        sending = True

        async def watch_lag() -> None:
            while sending:
                due = time.perf_counter() + LAG_TICK_S
                await asyncio.sleep(LAG_TICK_S)
                lag.append(max(0.0, time.perf_counter() - due) * 1000)

        watcher = asyncio.create_task(watch_lag())
        cpu = resource.getrusage(resource.RUSAGE_SELF)
        started = time.perf_counter()
        tasks = []
        for n, (server, agent) in enumerate(plan):
            await asyncio.sleep(max(0.0, started + n / rate - time.perf_counter()))
            tasks.append(asyncio.create_task(self._call(server, agent, timeout_s)))
        sending_s = time.perf_counter() - started
        calls = list(await asyncio.gather(*tasks))
        seconds = time.perf_counter() - started
        sending = False
        await watcher
        after = resource.getrusage(resource.RUSAGE_SELF)
        cpu_s = (after.ru_utime - cpu.ru_utime) + (after.ru_stime - cpu.ru_stime)
        return LoadResult(calls, lag, cpu_s, seconds, sending_s)

    async def _call(self, server: int, agent: Agent, timeout_s: float) -> Call:
        url = f"{self.bases[server]}/twilio/voice"
        sid = new_call_sid()
        caller = self.callers[self.calls_made % len(self.callers)]
        self.calls_made += 1
        form = inbound_call_form(sid, caller, agent.number, ACCOUNT_SID)
        headers = {"X-Twilio-Signature": sign(self.auth_token, url, form)}
        call = Call(sid, agent, server, time.perf_counter())
        try:
            async with self.requests.post(url, data=form, headers=headers,
                                          timeout=aiohttp.ClientTimeout(total=timeout_s)
                                          ) as reply:
                body = await reply.text()
                call.answered, call.status = time.perf_counter(), reply.status
                call.routed = f">a{agent.index}<" in body
                call.found = '<Parameter name="found" value="true"' in body
        except TimeoutError:
            call.error = f"no answer within {timeout_s:g} s"
        except (aiohttp.ClientError, OSError) as exc:
            call.error = f"{type(exc).__name__}: {exc}"
        return call

    async def wait_for_pops(self, sids: set[str], timeout_s: float) -> None:
        """Until every pop of ``sids`` has arrived, or ``timeout_s``."""
        deadline = time.perf_counter() + timeout_s
        while time.perf_counter() < deadline and not sids <= self.arrived.keys():
            await asyncio.sleep(0.05)

