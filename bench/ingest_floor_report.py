"""The figures of ``bench.ingest_floor_postgres`` in words: its tables, and the arithmetic
that sets the floor against the bar."""

from __future__ import annotations

from dataclasses import dataclass

from bench.cpu import Spent
from bench.report import machine

BAR = 50_000  # profile records/s, the bar of `cahub ingest` into PostgreSQL
TABLES = ("persons", "identities", "fragments")  # in the order the bulk load writes them
STEPS = ("DROP INDEX", *(f"COPY {table}" for table in TABLES), "CREATE INDEX", "COMMIT")


@dataclass(frozen=True)
class Verdict:
    """The floor against the bar: ``cores`` busy all the time give ``budget_us`` of CPU per
    record at ``bar`` records/s; the floor needs ``need_us`` (the server's share and
    parsing) and goes no faster than ``single_stream_per_s`` through one COPY stream."""

    bar: int
    cores: int
    need_us: float
    single_stream_per_s: float

    @property
    def budget_us(self) -> float:
        return self.cores / self.bar * 1e6

    @property
    def cpu_bound_per_s(self) -> float:
        """Records/s if every core did nothing but the floor's work and parsing."""
        return self.cores / self.need_us * 1e6

    @property
    def best_per_s(self) -> float:
        """The most a load of lines through one COPY stream (as the product's) can do."""
        return min(self.cpu_bound_per_s, self.single_stream_per_s)

    @property
    def reachable(self) -> bool:
        return self.best_per_s >= self.bar


def verdict_lines(v: Verdict, server_us: float, parse_us: float) -> list[str]:
    """The arithmetic, said in full."""
    word = ("not ruled out by the floor (the product's own work must still fit)"
            if v.reachable else "**out of reach**, whatever the Python does")
    return [
        f"- At the bar, {v.bar:,} records/s, {v.cores} cores give {v.cores} / {v.bar:,} s = "
        f"**{v.budget_us:.1f} µs** of CPU per record for everything: reading and parsing "
        "lines, linking, building rows, and PostgreSQL.",
        f"- The floor's PostgreSQL CPU ({server_us:.1f} µs/record) + parsing alone "
        f"({parse_us:.1f} µs/record) = **{v.need_us:.1f} µs/record**, "
        f"{v.need_us / v.budget_us:.2f}× that budget.",
        f"- So the cores allow at most {v.cores} / {v.need_us:.1f} µs = "
        f"**{v.cpu_bound_per_s:,.0f} records/s**, however the work is spread over them and "
        "with nothing else done; and one COPY stream (as the product writes) no more than "
        f"the floor's own rate, {v.single_stream_per_s:,.0f}/s. The best the floor allows: "
        f"**{v.best_per_s:,.0f} records/s**.",
        f"- Verdict, ≥ {v.bar:,} profile records/s on this machine with these settings: "
        f"{word}.",
    ]


@dataclass(frozen=True)
class Figures:
    """The medians of one run."""

    n: int
    rows: dict[str, int]  # each table's rows, as the product path left them
    product: Spent
    floors: dict[str, dict[str, Spent]]  # "a"/"b" -> step (or "in all") -> spent
    parse_s: float
    indexes: list[str]  # the secondary indexes (b) builds at the end

    def floor_server_us(self) -> float:
        """The floor's PostgreSQL CPU per record, the cheaper of its two ways."""
        return min(steps["in all"].server for steps in self.floors.values()) / self.n * 1e6

    def floor_per_s(self) -> float:
        """The floor's records/s, the faster of its two ways."""
        return max(self.n / steps["in all"].wall for steps in self.floors.values())

    def verdict(self, cores: int) -> Verdict:
        return Verdict(BAR, cores, self.floor_server_us() + self.parse_s / self.n * 1e6,
                       self.floor_per_s())


@dataclass(frozen=True)
class Setting:
    """What the figures were measured with."""

    command: str
    server: str  # host:port
    version: str
    settings: dict[str, str]
    workers: int
    repeat: int
    cores: int


def floor_rows(figures: Figures) -> list[str]:
    """The floor's table: each step's wall seconds and PostgreSQL CPU µs per record."""
    n, (a, b) = figures.n, (figures.floors["a"], figures.floors["b"])

    def cells(steps: dict[str, Spent], name: str, bold: str = "") -> str:
        if name not in steps:
            return "— | —"
        return (f"{bold}{steps[name].wall:.2f}{bold} | "
                f"{bold}{steps[name].server / n * 1e6:.1f}{bold}")

    def label(name: str) -> str:
        table = name.removeprefix("COPY ")
        return f"{name} ({figures.rows[table]:,} rows)" if table in figures.rows else name

    rows = [f"| {label(name)} | {cells(a, name)} | {cells(b, name)} |" for name in STEPS]
    return [
        *rows,
        f"| **in all, one transaction** | {cells(a, 'in all', '**')} | "
        f"{cells(b, 'in all', '**')} |",
        f"| — records/s | {n / a['in all'].wall:,.0f} | | {n / b['in all'].wall:,.0f} | |",
        f"| — this process's CPU (sending COPY), µs/record | "
        f"{a['in all'].here / n * 1e6:.1f} | | {b['in all'].here / n * 1e6:.1f} | |",
    ]


def plural(count: int, word: str) -> str:
    """"1 repeat", "3 repeats", "2 parsing processes"."""
    if count == 1:
        return f"{count} {word}"
    return f"{count} {word}{'es' if word.endswith('s') else 's'}"


def report(figures: Figures, at: Setting) -> str:
    """The section's text: what was loaded, how, the floor, and the verdict."""
    n, p = figures.n, figures.product
    us = p.per_record_us(n)
    parse_us = figures.parse_s / n * 1e6
    server_us = figures.floor_server_us()
    shown = ", ".join(f"`{name}` = {value}" for name, value in at.settings.items())
    per_record = figures.rows["identities"] / n
    return f"""`{at.command}` — {machine()}.
PostgreSQL {at.version} at {at.server}, on the same {at.cores} cores; its settings: {shown}.
Medians of {plural(at.repeat, "repeat")} of each figure, the repeats alternating; other
work may have run on the machine meanwhile.

**What was loaded.** {n:,} synthetic XDM profile records as JSON Lines
(`bench/synthetic.py`), one person each ({per_record:.1f} identities a record): a first
load of new customers into an empty store, the case the bulk path writes with COPY.

**1. The product path**: the file to a committed store through
`PostgresProfileStore.ingest("profiles", file)`, `cahub ingest`'s path
(`lookup/store/postgres/bulk.py`), into a fresh database, with
{plural(at.workers, "parsing process")} (`CAHUB_INGEST_WORKERS`). CPU is read from /proc:
this process with its parsing workers; the server's processes (its postmaster and every
child of it: backends, WAL writer, checkpointer, autovacuum), before and after; and the
machine's busy time, all cores.

| product path, {n:,} lines | s | µs/record |
|---|---|---|
| **records/s** (bar ≥ {BAR:,}) | **{n / p.wall:,.0f}** | |
| wall | {p.wall:.2f} | {us.wall:.1f} |
| CPU: this process + parsing workers | {p.here:.2f} | {us.here:.1f} |
| CPU: PostgreSQL's processes | {p.server:.2f} | {us.server:.1f} |
| CPU: the machine, all cores (busy {p.machine / (at.cores * p.wall):.0%} of \
{at.cores} × wall) | {p.machine:.2f} | {us.machine:.1f} |

**2. The floor**: the rows that load left in `persons`, `identities` and `fragments`,
dumped once with `COPY … TO STDOUT` into memory, then loaded into the empty tables of a
fresh store with `COPY … FROM STDIN` in one transaction on one connection: (a) with
every index in place; (b) with the secondary indexes ({", ".join(figures.indexes)})
dropped first and built again at the end of the same transaction. Nothing is parsed,
linked or built in Python, and the rows arrive in COPY's own text format: the least
PostgreSQL can be made to do to hold these rows. Any load of the lines must have
PostgreSQL store the same rows (the same keys and indexes kept, the same WAL written)
and must parse every line besides, so no load of lines can beat the floor.

| floor step | (a) wall s | (a) PostgreSQL CPU µs/record | (b) wall s \
| (b) PostgreSQL CPU µs/record |
|---|---|---|---|---|
{chr(10).join(floor_rows(figures))}

**3. Parsing alone**: `lookup.store.parsing.parse_chunk` over every line in this one
process (JSON, phone numbers, identities, validation): **{parse_us:.1f} µs/record** of
CPU. A load can spread it over processes but not avoid it.

**4. The arithmetic** (with the floor's cheaper way, by PostgreSQL CPU):

{chr(10).join(verdict_lines(figures.verdict(at.cores), server_us, parse_us))}

The floor leaves out the product's own work (reading the file, linking, building rows,
psycopg's COPY formatting) and what PostgreSQL does after the commit (checkpoints,
autovacuum's ANALYZE), so the true bound is lower still.
"""
