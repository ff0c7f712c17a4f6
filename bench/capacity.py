"""Capacity: thousands of agent consoles and 100 calls/s on two hub servers.

Two hub servers (two gunicorn masters on two ports, as two hosts would be; each started with
the README's production command ``gunicorn -c python:web.gunicorn_conf --bind
127.0.0.1:PORT``) share Redis (``CAHUB_REDIS_URL``, a key prefix of the run's own, deleted
afterwards) and PostgreSQL (``CAHUB_DATABASE_URL``, a database ``cahub_capacity_<random>``
made for the run and dropped afterwards), which also holds the profile store, loaded with
the demo customers. No CRM and no SMS sender is configured: no delivery leaves the
machine. Each console is signed in as an agent of its own (one agent per console, each with
its own Twilio number); agent ``i``'s console is opened on server ``i % 2``.

For each count of ``--consoles`` (in rising order; the consoles of a phase stay open into the
next), the load client opens the consoles, then sends ``--rate`` signed inbound-call webhooks
a second for ``--seconds``, each to a number routed to an agent whose console is open on the
OTHER server (the pop crosses servers through Redis), and measures:

- webhook → TwiML (the answer read whole) and webhook → pop (its arrival on the console's
  stream), median and p99; pops that never arrived (lost); calls not answered;
- each worker's resident memory before and after the consoles were opened, and the sockets
  it holds (its share of the consoles): memory per console;
- console streams that ended before the client closed them (dropped);
- the load client's own delay (how late its event loop wakes a 5 ms timer) and CPU, the
  servers' CPU and the machine's, so that a saturated client or machine shows.

The control is the same run with the gthread worker the production configuration used
(``--worker-class web.gunicorn_conf.ThreadWorker --threads 64`` on the same command line),
which holds a thread per console: once it stops taking streams, a probe webhook to each
server shows whether it is still answered, and the phases after a server gave no answer are
not run (more consoles cannot help).

    .venv/bin/python -m bench.capacity [--consoles 0,1000,2000,5000] [--rate 100]
        [--seconds 20] [--worker gevent|gthread|both] [--runs 1]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import resource
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import requests

from bench.capacity_client import Agent, Client, LoadResult
from bench.report import machine, percentile, record
from bench.slow_clients import free_port
from bench.webhook import demo_numbers, stop_server
from lookup.demo import load_demo
from lookup.store.postgres.store import PostgresProfileStore
from tests.backends import fresh_database, fresh_prefix

SECTION = "Capacity: consoles and calls on two servers"
TOKEN = "capacity-auth-token"
WEBHOOK_TIMEOUT_S = 10.0  # a webhook not answered by then is "no answer"
OPEN_TIMEOUT_S = 10.0  # a console stream whose headers take longer did not open
POP_WAIT_S = 5.0  # after the last answer, how long pops still may arrive
WARMUP_S = 2.0  # calls before the first phase, at the same rate, not counted
SETTLE_S = 2.0  # after opening consoles, before memory is read
START_TIMEOUT_S = 90.0
PRODUCTION = "python:web.gunicorn_conf"
UNRECORDED = "answered before the hub's database recorded it"  # hub.call_state's warning


# -- the servers -----------------------------------------------------------------------------

def server_commands(kind: str, port: int, more: list[str]) -> tuple[list[str], str]:
    """The gunicorn command line for ``kind`` (gevent or gthread), with ``more`` options, and
    how it differs from the README's production command (empty: it is that command)."""
    import web.gunicorn_conf as conf

    command = [str(Path(sys.executable).parent / "gunicorn"), "-c", PRODUCTION,
               "--bind", f"127.0.0.1:{port}"]
    production = str(getattr(conf, "worker_class", ""))
    if kind == "gthread":
        worker = ("web.gunicorn_conf.ThreadWorker" if hasattr(conf, "ThreadWorker")
                  else "gthread")
        extra = ["--worker-class", worker, "--threads", "64"]
    elif "gevent" in production.lower():
        extra = []
    else:
        extra = ["--worker-class", "gevent"]  # the production configuration is not gevent yet
    extra += more
    return command + extra, " ".join(extra)


def hub_environment(data_dir: Path, redis_url: str, prefix: str, database_url: str) -> dict[
        str, str]:
    return {**os.environ, "CAHUB_DATA_DIR": str(data_dir),
            "CAHUB_CONFIG": str(data_dir / "hub.toml"), "CAHUB_TWILIO_AUTH_TOKEN": TOKEN,
            "CAHUB_SECRET_KEY": secrets.token_hex(16), "CAHUB_REDIS_URL": redis_url,
            "CAHUB_REDIS_PREFIX": prefix, "CAHUB_DATABASE_URL": database_url,
            "CAHUB_CRM": "none"}


def start_hub(command: list[str], env: dict[str, str], log: Path,
              port: int) -> subprocess.Popen[bytes]:
    """A gunicorn master (its own process group), once ``/healthz`` answers."""
    with log.open("ab") as out:
        server = subprocess.Popen(command, env=env, stdout=out, stderr=out,
                                  start_new_session=True)
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"the hub exited with {server.returncode}: {tail(log)}")
        with contextlib.suppress(requests.RequestException):
            if requests.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code < 600:
                return server
        time.sleep(0.1)
    stop_server(server)
    raise RuntimeError(f"the hub did not answer within {START_TIMEOUT_S:g} s: {tail(log)}")


def tail(log: Path, lines: int = 15) -> str:
    return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])


def workers(master: int) -> list[int]:
    """The worker processes of a gunicorn master."""
    children = Path(f"/proc/{master}/task/{master}/children").read_text().split()
    return sorted(int(pid) for pid in children)


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for {pid}")


def sockets(pid: int) -> int:
    """Sockets the process holds open (listening, clients', Redis's and PostgreSQL's)."""
    held = 0
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        with contextlib.suppress(OSError):
            held += os.readlink(fd).startswith("socket:")
    return held


def cpu_s(pid: int) -> float:
    """User + system CPU seconds the process has used."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def machine_busy() -> tuple[float, float]:
    """(busy, total) jiffies of every core since boot."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = values[3] + values[4]
    return sum(values) - idle, sum(values)


# -- the hub's configuration -----------------------------------------------------------------

def make_agents(count: int) -> list[Agent]:
    return [Agent(n, f"capacity-{n}-{secrets.token_hex(12)}", f"+1800555{n:04d}", n % 2)
            for n in range(count)]


def hub_toml(agents: list[Agent]) -> str:
    return "".join(f'[[agents]]\nid = "a{a.index}"\nname = "Agent {a.index}"\n'
                   f'client = "a{a.index}"\nnumbers = ["{a.number}"]\ntoken = "{a.token}"\n\n'
                   for a in agents)


# -- one phase -------------------------------------------------------------------------------

@dataclass
class Phase:
    """One count of consoles: what opened, what memory it took, and the calls' figures."""

    consoles: int
    opened: int = 0  # consoles open during the load (all phases' so far)
    refused: int = 0  # consoles that got no stream within OPEN_TIMEOUT_S (or an error)
    untried: int = 0
    per_server: list[int] = field(default_factory=list)  # consoles open on each server
    held: list[int] = field(default_factory=list)  # per worker: sockets added since consoles
    rss_before_kib: list[int] = field(default_factory=list)  # per worker, before any console
    rss_kib: list[int] = field(default_factory=list)  # per worker, consoles open
    console_growth_kib: list[int] = field(default_factory=list)  # per worker, by opening
    skipped: str | None = None  # why no load was sent
    calls: int = 0
    answered: int = 0
    found: int = 0  # answers that carried the caller's profile
    unrecorded: int = 0  # answered before the hub's database recorded the call (its log says)
    misrouted: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    twiml_ms: list[float] = field(default_factory=list)
    pop_ms: list[float] = field(default_factory=list)
    expected_pops: int = 0
    dropped: int = 0
    drop_reasons: list[str] = field(default_factory=list)
    lag_ms: list[float] = field(default_factory=list)
    client_cpu: float = 0.0  # share of one core
    server_cpu: float = 0.0  # share of one core, both servers' processes
    cpu_per_call_ms: float = 0.0  # both servers' CPU over the calls sent
    machine_busy: float = 0.0  # share of the machine (every core)
    achieved_rate: float = 0.0

    @property
    def lost(self) -> int:
        return self.expected_pops - len(self.pop_ms)

    def per_console_kib(self) -> float | None:
        """Memory the consoles took, per console: every worker's growth while consoles were
        opened, over the consoles open."""
        return sum(self.console_growth_kib) / self.opened if self.opened else None


@dataclass
class ConfigRun:
    kind: str
    differs: str  # how the command differs from the production command
    workers: list[int]  # workers per server
    login_s: float
    phases: list[Phase]


class Bench:
    """One configuration's run against two started servers."""

    def __init__(self, masters: list[int], bases: list[str], agents: list[Agent],
                 callers: list[str], logs: list[Path], args: argparse.Namespace) -> None:
        self.masters, self.bases, self.agents, self.args = masters, bases, agents, args
        self.logs = logs
        self.callers = callers
        self.pids = [pid for master in masters for pid in workers(master)]
        self.open = 0  # agents 0..open-1 have their console open

    def processes(self) -> list[int]:
        return [*self.masters, *self.pids]

    def plan(self, calls: int) -> list[tuple[int, Agent]]:
        """Call ``n`` goes to agent ``n`` (of those with an open console, round and round),
        on the server its console is not on."""
        pool = self.agents[:self.open] if self.open else self.agents
        return [(1 - agent.home, agent) for agent in (pool[n % len(pool)] for n in range(calls))]

    async def run(self, counts: list[int]) -> tuple[float, list[Phase]]:
        self.client = Client(self.bases, TOKEN, self.callers)  # on the running loop
        login_s = await self.client.log_in(self.agents[:max(counts)])
        await self.client.load(self.plan(int(self.args.rate * WARMUP_S)), self.args.rate,
                               WEBHOOK_TIMEOUT_S)
        await asyncio.sleep(SETTLE_S)
        baseline_rss = [rss_kib(pid) for pid in self.pids]
        baseline_sockets = [sockets(pid) for pid in self.pids]
        growth = [0] * len(self.pids)
        phases: list[Phase] = []
        stopped: str | None = None
        try:
            for count in counts:
                phase = Phase(count, rss_before_kib=baseline_rss)
                phases.append(phase)
                if stopped:
                    phase.skipped = stopped
                    continue
                before = [rss_kib(pid) for pid in self.pids]
                opened, phase.refused, phase.untried = await self.client.open_consoles(
                    self.agents[self.open:count], OPEN_TIMEOUT_S)
                self.open += opened
                await asyncio.sleep(SETTLE_S)
                phase.rss_kib = [rss_kib(pid) for pid in self.pids]
                growth = [g + after - b for g, after, b in zip(growth, phase.rss_kib, before,
                                                               strict=True)]
                phase.console_growth_kib = growth
                phase.held = [sockets(pid) - base
                              for pid, base in zip(self.pids, baseline_sockets, strict=True)]
                phase.opened = len(self.client.consoles)
                phase.per_server = [sum(c.agent.home == n for c in self.client.consoles.values())
                                    for n in range(len(self.bases))]
                silent = await self.probe()
                if silent:
                    phase.skipped = silent
                    stopped = f"not run: no webhook answered at {count:,} consoles"
                    continue
                await self.load(phase)
                dropped = self.client.dropped()
                phase.dropped, phase.drop_reasons = len(dropped), sorted(set(dropped))[:3]
        finally:
            await self.client.close()
        return login_s, phases

    async def probe(self) -> str | None:
        """One webhook to each server: None if both answered, else what happened."""
        agent = self.agents[self.open - 1] if self.open else self.agents[0]
        calls = await asyncio.gather(*(self.client.probe(server, agent, WEBHOOK_TIMEOUT_S)
                                       for server in range(len(self.bases))))
        failed = [f"server {n + 1}: {call.error or call.status}"
                  for n, call in enumerate(calls) if call.status != 200]
        return "; ".join(failed) or None

    async def load(self, phase: Phase) -> None:
        calls = int(self.args.rate * self.args.seconds)
        unrecorded = logged(self.logs, UNRECORDED)
        cpu_before = sum(cpu_s(pid) for pid in self.processes())
        busy_before = machine_busy()
        result: LoadResult = await self.client.load(self.plan(calls), self.args.rate,
                                                    WEBHOOK_TIMEOUT_S)
        cpu_after = sum(cpu_s(pid) for pid in self.processes())
        busy_after = machine_busy()
        answered = [c for c in result.calls if c.status == 200 and c.answered is not None]
        expecting = {c.sid for c in answered if c.agent.index < self.open}
        await self.client.wait_for_pops(expecting, POP_WAIT_S)
        phase.unrecorded = logged(self.logs, UNRECORDED) - unrecorded
        arrived = self.client.arrived
        phase.calls, phase.answered = len(result.calls), len(answered)
        phase.misrouted = sum(not c.routed for c in answered)
        phase.found = sum(c.found for c in answered)
        for call in result.calls:
            if call.status != 200:
                reason = call.error or f"answered {call.status}"
                phase.errors[reason] = phase.errors.get(reason, 0) + 1
        phase.twiml_ms = [(c.answered - c.sent) * 1000 for c in answered if c.answered]
        phase.pop_ms = [(arrived[c.sid] - c.sent) * 1000 for c in answered if c.sid in expecting
                        and c.sid in arrived]
        phase.expected_pops = len(expecting)
        phase.lag_ms = result.lag_ms
        phase.client_cpu = result.client_cpu_s / result.seconds
        phase.server_cpu = (cpu_after - cpu_before) / result.seconds
        phase.cpu_per_call_ms = (cpu_after - cpu_before) * 1000 / len(result.calls)
        phase.machine_busy = ((busy_after[0] - busy_before[0])
                              / max(1, busy_after[1] - busy_before[1]))
        phase.achieved_rate = (len(result.calls) - 1) / max(result.sending_s, 1e-9)


def logged(logs: list[Path], needle: str) -> int:
    """Lines of the servers' logs that hold ``needle``."""
    return sum(line.count(needle) for log in logs
               for line in log.read_text(errors="replace").splitlines())


def run_configuration(kind: str, data_dir: Path, agents: list[Agent], callers: list[str],
                      args: argparse.Namespace) -> ConfigRun:
    """Two servers of ``kind`` on fresh Redis keys and a fresh database; every phase."""
    counts = sorted({int(c) for c in args.consoles.split(",")})
    with fresh_prefix(args.redis, "cahub-capacity") as prefix, \
            fresh_database(args.postgres, "cahub_capacity") as database:
        env = hub_environment(data_dir, args.redis, prefix, database)
        store = PostgresProfileStore(database)  # with a database URL, the servers' store
        load_demo(store)
        store.close()
        ports = [free_port(), free_port()]
        servers: list[subprocess.Popen[bytes]] = []
        logs = [data_dir / f"{kind}-{n + 1}.log" for n in range(len(ports))]
        try:
            differs = ""
            for port, log in zip(ports, logs, strict=True):
                command, differs = server_commands(kind, port, args.server_args.split())
                servers.append(start_hub(command, env, log, port))
            time.sleep(1.0)  # the workers' own start (the master answers through them)
            bench = Bench([s.pid for s in servers], [f"http://127.0.0.1:{p}" for p in ports],
                          agents, callers, logs, args)
            per_server = [len(workers(s.pid)) for s in servers]
            login_s, phases = asyncio.run(bench.run(counts))
        finally:
            for server in servers:
                stop_server(server)
            for log in logs:
                if args.logs and log.exists():
                    shutil.copy(log, Path(args.logs) / log.name)
                log.unlink(missing_ok=True)
    return ConfigRun(kind, differs, per_server, login_s, phases)


# -- the report ------------------------------------------------------------------------------

def median_of(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def latency(runs: list[Phase], attr: str) -> str:
    """Median over runs of each run's median and p99."""
    samples = [getattr(p, attr) for p in runs if getattr(p, attr)]
    if not samples:
        return "–"
    mid = median_of([statistics.median(s) for s in samples])
    p99 = median_of([percentile(s, 99) for s in samples])
    return f"{mid:.1f} / {p99:.1f}"


def phase_row(runs: list[Phase]) -> str:
    first = runs[0]
    consoles = f"{first.consoles:,}"
    if all(p.skipped and not p.per_server for p in runs):
        return f"| {consoles} | – | {first.skipped} | | | | | | | |"
    opened = median_of([p.opened for p in runs])
    split = " · ".join(f"{median_of([p.per_server[n] for p in runs]):,.0f}"
                       for n in range(len(first.per_server)))
    open_cell = f"{opened:,.0f} ({split})"
    if len(first.held) > len(first.per_server):  # several workers a server: the kernel splits
        busiest = median_of([max(p.held) for p in runs])
        open_cell += f", ≤ {busiest:,.0f} sockets a process"
    if first.refused or first.untried:
        open_cell += f"; {first.refused + first.untried:,} did not open within {OPEN_TIMEOUT_S:g} s"
    memory = " · ".join(f"{b / 1024:.0f} → {a / 1024:.0f}"
                        for b, a in zip(first.rss_before_kib, first.rss_kib, strict=False))
    kib = [k for k in (p.per_console_kib() for p in runs) if k is not None]
    per_console = f"{median_of(kib):.1f}" if kib else "–"
    if all(p.skipped for p in runs):
        return (f"| {consoles} | {open_cell} | {first.skipped} | | | | | | {memory or '–'} "
                f"| {per_console} |")
    answered = (f"{median_of([p.answered for p in runs]):,.0f} of {first.calls:,}, "
                f"{median_of([p.found for p in runs]):,.0f} with the profile")
    unrecorded = median_of([p.unrecorded for p in runs])
    if unrecorded:
        answered += f", {unrecorded:,.0f} before the database recorded them"
    if any(p.misrouted for p in runs):
        answered += f", {max(p.misrouted for p in runs)} to another agent"
    if first.errors:
        answered += " (" + ", ".join(f"{n} {why}" for why, n in first.errors.items()) + ")"
    lost = "–" if not first.expected_pops else f"{median_of([p.lost for p in runs]):.0f}"
    dropped = f"{max(p.dropped for p in runs)}"
    cpu = median_of([p.cpu_per_call_ms for p in runs])
    return (f"| {consoles} | {open_cell} | {latency(runs, 'twiml_ms')} | "
            f"{latency(runs, 'pop_ms')} | {answered} | {lost} | {dropped} | {cpu:.1f} "
            f"| {memory} | {per_console} |")


TABLE_HEAD = (
    "| consoles | open during the load (server 1 · 2) | webhook → TwiML, ms: median / p99 "
    "| webhook → pop, ms: median / p99 | calls answered | pops lost | streams dropped "
    "| servers' CPU per call, ms | RSS per worker, MB: before consoles → with them "
    "| KiB per console |\n"
    "|---|---|---|---|---|---|---|---|---|---|"
)


def client_line(runs: list[ConfigRun]) -> str:
    phases = [p for run in runs for p in run.phases if p.lag_ms]
    if not phases:
        return ""
    lag99 = max(percentile(p.lag_ms, 99) for p in phases)
    client = max(p.client_cpu for p in phases)
    servers = max(p.server_cpu for p in phases)
    rate = min(p.achieved_rate for p in phases)
    cores = os.cpu_count() or 1
    busy = [p.machine_busy for p in phases]
    others = [p.machine_busy * cores - p.server_cpu - p.client_cpu for p in phases]
    return (f"The load client (all runs, worst phase): its event loop woke a 5 ms timer at "
            f"most {lag99:.1f} ms late (p99), it used at most {client:.0%} of a core and sent "
            f"at least {rate:.1f} calls/s. Both servers' processes used at most {servers:.0%} "
            f"of a core. During the loads the machine's {cores} cores were "
            f"{min(busy):.0%}–{max(busy):.0%} busy, of which Redis, PostgreSQL and work other "
            f"than the hub's and the client's took {max(0.0, min(others)):.1f}–"
            f"{max(others):.1f} cores.")


def busiest_others(seconds: float = 2.0, top: int = 5) -> str:
    """The processes other than this one that used the most CPU over ``seconds``."""
    def snapshot() -> dict[tuple[int, str], float]:
        taken = {}
        for stat in Path("/proc").glob("[0-9]*/stat"):
            with contextlib.suppress(OSError, ValueError, IndexError):
                text = stat.read_text()
                name = text[text.index("(") + 1:text.rindex(")")]
                taken[(int(stat.parent.name), name)] = cpu_s(int(stat.parent.name))
        return taken

    before = snapshot()
    time.sleep(seconds)
    after = snapshot()
    used = sorted(((after[key] - before[key]) / seconds, key[1]) for key in after
                  if key in before and key[0] != os.getpid())
    return ", ".join(f"{name} {share:.0%}" for share, name in reversed(used[-top:])
                     if share >= 0.05) or "nothing"


def met(ok: bool) -> str:
    return "met" if ok else "NOT met"


def verdicts(kind: str, runs: list[ConfigRun]) -> list[str]:
    """Each phase against the bars, then the most consoles a process held while they held."""
    lines = []
    held_in_bar = held_working = 0.0
    for index, count in enumerate(p.consoles for p in runs[0].phases):
        phases = [run.phases[index] for run in runs]
        if all(p.skipped for p in phases) or not any(p.twiml_ms for p in phases):
            lines.append(f"- {kind}, {count:,} consoles: {phases[0].skipped} "
                         f"({met(False)}).")
            continue
        twiml99 = median_of([percentile(p.twiml_ms, 99) for p in phases if p.twiml_ms])
        unanswered = max(p.calls - p.answered for p in phases)
        parts = [f"TwiML p99 {twiml99:.1f} ms ({met(twiml99 <= 25)}, bar ≤ 25)"]
        if count:
            pop99 = median_of([percentile(p.pop_ms, 99) for p in phases if p.pop_ms])
            lost = max(p.lost for p in phases)
            parts.append(f"pop p99 {pop99:.1f} ms ({met(pop99 <= 50)}, bar ≤ 50)")
            parts.append(f"pops lost {lost} ({met(lost == 0)}, bar 0)")
        parts.append(f"calls unanswered {unanswered} ({met(unanswered == 0)}, bar 0)")
        lines.append(f"- {kind}, {count:,} consoles: " + "; ".join(parts) + ".")
        held = median_of([per_process(p, run) for p, run in zip(phases, runs, strict=True)])
        if unanswered == 0 and not any(p.lost for p in phases if count):
            held_working = max(held_working, held)
        if twiml99 <= 25 and unanswered == 0:
            held_in_bar = max(held_in_bar, held)
    lines.append(f"- {kind}: the most consoles one process held with every call answered and "
                 f"every pop delivered: {held_working:,.0f}.")
    lines.append(f"- {kind}: the most consoles one process held while webhooks kept p99 ≤ 25 ms "
                 f"and every call was answered: {held_in_bar:,.0f} (bar ≥ 5,000: "
                 f"{met(held_in_bar >= 5000)}).")
    return lines


def per_process(phase: Phase, run: ConfigRun) -> float:
    """The consoles of the busiest process: a server's own, or with several workers a server,
    the sockets the consoles added to its busiest worker."""
    if not phase.per_server:
        return 0.0
    if max(run.workers) > 1:
        return float(max(phase.held))
    return float(max(phase.per_server))


def compared(mine: list[float], theirs: list[float]) -> str:
    """TwiML ``mine`` / ``theirs``: medians, then p99s."""
    return (f"TwiML median {statistics.median(mine) / statistics.median(theirs):.2f}×, "
            f"p99 {percentile(mine, 99) / percentile(theirs, 99):.2f}×")


def ratios(runs: dict[str, list[ConfigRun]]) -> list[str]:
    """Figures compared within one run: the last run that measured both configurations."""
    lines = []
    if "gevent" in runs and "gthread" in runs:
        gevent, gthread = runs["gevent"][-1], runs["gthread"][-1]
        lines += [f"- {mine.consoles:,} consoles, gevent / gthread, the same run: "
                  f"{compared(mine.twiml_ms, theirs.twiml_ms)}."
                  for mine, theirs in zip(gevent.phases, gthread.phases, strict=True)
                  if mine.twiml_ms and theirs.twiml_ms]
    for kind, kind_runs in runs.items():
        phases = [p for p in kind_runs[-1].phases if p.twiml_ms]
        if len(phases) >= 2 and phases[0].consoles == 0:
            lines.append(f"- {kind}, {phases[-1].consoles:,} consoles / none, the same run: "
                         f"{compared(phases[-1].twiml_ms, phases[0].twiml_ms)}.")
    return lines


def report(runs: dict[str, list[ConfigRun]], args: argparse.Namespace,
           load: tuple[float, str]) -> str:
    command = (f"python -m bench.capacity --consoles {args.consoles} --rate {args.rate:g} "
               f"--seconds {args.seconds:g} --worker {args.worker} --runs {args.runs}")
    if args.server_args:
        command += f" --server-args '{args.server_args}'"
    blocks = []
    for kind, kind_runs in runs.items():
        first = kind_runs[0]
        how = (f"the production command plus `{first.differs}`" if first.differs
               else "the production command as it is")
        rows = "\n".join(phase_row([run.phases[i] for run in kind_runs])
                         for i in range(len(first.phases)))
        p99s = "; ".join(
            f"run {n + 1}: " + ", ".join(
                f"{p.consoles:,} → {percentile(p.twiml_ms, 99):.1f} / "
                + (f"{percentile(p.pop_ms, 99):.1f}" if p.pop_ms else "–")
                for p in run.phases if p.twiml_ms)
            for n, run in enumerate(kind_runs))
        login_s = median_of([r.login_s for r in kind_runs])
        blocks.append(f"""**{kind}**: {how}; {first.workers[0]} worker(s) per server.
Signing in {max(p.consoles for p in first.phases):,} agents took {login_s:.1f} s.

{TABLE_HEAD}
{rows}

Each run's p99s, consoles → TwiML / pop ms: {p99s}.
""")
    reading = [line for kind, kind_runs in runs.items() for line in verdicts(kind, kind_runs)]
    return f"""`.venv/bin/{command}` — {machine()}.
At the start: load average {load[0]:.2f}; the busiest other processes, in shares of a core:
{load[1]}.

Two hub servers, each a gunicorn master with the README's production command
(`gunicorn -c python:web.gunicorn_conf --bind 127.0.0.1:PORT`) on a port of its own, share
Redis (a key prefix of the run's own) and PostgreSQL (a database made for the run), and a data
directory with the demo customers. Each console is an agent of its own (its own token and
Twilio number) signed in through the login form; agent *i*'s console is on server *i* mod 2.
Per phase, {args.rate:g} signed inbound-call webhooks a second for {args.seconds:g} s (from the
demo customers' numbers, an open loop), each to an agent whose console is open on the other
server; the consoles of a phase stay open into the next. TwiML: the webhook sent to its answer
read; pop: sent to the `screenpop` event read from the console's stream (one clock, the load
client's). Every caller is a demo customer: an answer "with the profile" carries it (the
lookup ended within the webhook's deadline, `CAHUB_LOOKUP_DEADLINE_MS`, 1,000 ms by
default); one without it waited out the deadline. Answers "before the database recorded
them" waited out the same deadline for the call's record (the ledger's claim and its
deliveries, one PostgreSQL transaction on the server's one state writer), then answered,
leaving the record to be saved later (the servers' logs count them). A webhook not answered
within {WEBHOOK_TIMEOUT_S:g} s counts as no answer; a console without its stream's headers after
{OPEN_TIMEOUT_S:g} s as not opened, and then no further console is tried; then one probe
webhook per server decides whether the load is sent.
Memory: the workers' RSS growth while consoles were opened (not while calls were taken),
over the consoles open. Medians over {args.runs} run(s); configurations alternate run by
run. The load client is one asyncio (aiohttp) process apart from the servers, on the same
2 cores as the servers, Redis and PostgreSQL.

{chr(10).join(blocks)}
{client_line([r for kind_runs in runs.values() for r in kind_runs])}

Side by side:

{chr(10).join(ratios(runs)) or '- (one configuration only)'}

Bars (PRODUCT.md §9: webhook → TwiML p99 ≤ 25 ms at 100 calls/s, webhook → pop p99 ≤ 50 ms,
no pop lost, one process holding 5,000 consoles while webhooks keep p99 ≤ 25 ms):

{chr(10).join(reading)}
"""


# -- the command -----------------------------------------------------------------------------

def raise_open_files() -> int:
    """Raise this process's limit of open files to its hard limit (children inherit it)."""
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--consoles", default="0,1000,2000,5000",
                        help="comma list of open consoles, across both servers")
    parser.add_argument("--rate", type=float, default=100.0, help="calls per second")
    parser.add_argument("--seconds", type=float, default=20.0, help="of calls per phase")
    parser.add_argument("--worker", choices=("gevent", "gthread", "both"), default="both")
    parser.add_argument("--runs", type=int, default=1, help="runs of each configuration")
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--postgres", default="postgresql://127.0.0.1:5432/postgres",
                        help="a maintenance URL: the run's database is made beside it")
    parser.add_argument("--server-args", default="",
                        help="more gunicorn options for both configurations (recorded in a "
                             "section of their own)")
    parser.add_argument("--logs", help="a directory to keep the servers' logs in")
    parser.add_argument("--no-record", action="store_true", help="print, do not record")
    args = parser.parse_args()
    limit = raise_open_files()
    most = max(int(c) for c in args.consoles.split(","))
    if most + 1000 > limit:
        parser.error(f"{most} consoles need more open files than the limit ({limit})")
    kinds = ["gevent", "gthread"] if args.worker == "both" else [args.worker]
    load = (os.getloadavg()[0], busiest_others())
    runs: dict[str, list[ConfigRun]] = {kind: [] for kind in kinds}
    with tempfile.TemporaryDirectory(prefix="cahub-capacity-") as tmp:
        data_dir = Path(tmp)
        agents = make_agents(max(most, 2))
        (data_dir / "hub.toml").write_text(hub_toml(agents))
        callers = demo_numbers()
        for run in range(args.runs):
            for kind in (kinds if run % 2 == 0 else kinds[::-1]):
                print(f"run {run + 1}: {kind}", flush=True)
                result = run_configuration(kind, data_dir, agents, callers, args)
                runs[kind].append(result)
                for phase in result.phases:
                    print(f"  {phase_row([phase])}", flush=True)
    body = report(runs, args, load)
    print(body)
    if not args.no_record:  # a run with other options is a section of its own
        record(SECTION + (f" (gunicorn {args.server_args})" if args.server_args else ""), body)


if __name__ == "__main__":
    main()
