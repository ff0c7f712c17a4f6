"""What a PostgreSQL lookup would cost if its rows were kept at write time: a measurement
for a design, towards the lookup bar (p50 <= 0.5 ms at 1 M profiles).

For each size, the synthetic data of ``bench.synthetic`` is loaded into a PostgreSQL store
in a database of this run's own (``store.ingest``, as ``cahub ingest``; dropped at the end).
Then ``lookup_cards`` is built from it with one SQL statement: for each person, what the
lookup's one statement reads (``bundle.BUNDLE``: the persons row, the 10 newest events as
arrays, the names of its audiences) and the values of ``COMPUTED`` at the build's instant.
It is a prototype: no write keeps it up to date. It measures what such a table would save,
not how to keep it (merges, forgets, renamed audiences, windows that move with time).

Three ways of reading a caller's profile are timed through the store's own lookup
(``store.lookup``: the caller's keys, the pool, one statement, the ``Profile``), one call
at a time, taking turns caller by caller, after a warm-up:

- ``statement``: the store as it is (``bundle.statement``);
- ``cards, computed in the statement``: the card's row, the computed attributes still
  worked out from the events by the same SQL (``computed.person_columns``);
- ``cards, computed kept``: the card's row with the values computed at the build.

Every profile read from cards is checked against the statement's.

    .venv/bin/python -m bench.lookup_cards_postgres [--sizes 10000,1000000] [--lookups 5000]
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import psycopg

from bench.postgres import SERVER_URL, scratch_url
from bench.report import machine, percentile, record
from bench.store import DEADLINE_S, WARM_UP, caller, code_revision, ingest
from bench.store_postgres import COMPUTED
from bench.synthetic import ensure_dataset, phone_of
from hub.models import Profile
from lookup.store.computed import (
    ComputedAttribute,
    column_constants,
    column_params,
    person_columns,
)
from lookup.store.postgres.bundle import BUNDLED, bundle_of, statement
from lookup.store.postgres.dialect import translate
from lookup.store.postgres.schema import DEFAULT_SCHEMA
from lookup.store.postgres.store import PostgresProfileStore
from lookup.store.read import Bundle, Unanswered

SECTION = "PostgreSQL store: a lookup from rows kept at write time (a design measurement)"
EVENTS = 10
KEPT = ", ".join(f"c.kept{n}" for n in range(len(COMPUTED)))
CARD = """
SELECT c.person_id, c.shared, c.uid, c.attributes, c.identities, c.event_ids, c.stamps,
       c.types, c.bodies, c.audience_ids, c.audience_names{kept}
FROM unnest(:keyspaces::text[], :values::text[]) WITH ORDINALITY AS k(keyspace, value, n)
CROSS JOIN LATERAL (
    SELECT i.person_id FROM identities AS i
    WHERE i.keyspace = k.keyspace AND i.value = k.value LIMIT 1
) AS h
JOIN lookup_cards AS c ON c.person_id = h.person_id
ORDER BY k.n
LIMIT 1
"""
# The cards, from the lookup's own statement run over every person (no retention: all
# events count, as in this benchmark's stores).
BUILD = f"""
CREATE TABLE lookup_cards AS
SELECT b.*, kept.*
FROM (
    SELECT p.person_id, p.shared, p.uid, a.attributes, p.identities,
           ev.ids, ev.stamps, ev.types, ev.bodies, au.ids, au.names
    FROM persons AS p
    CROSS JOIN LATERAL (
        SELECT coalesce(p.attributes, (SELECT f.attributes FROM fragments AS f
                                       WHERE f.person_id = p.person_id))
    ) AS a(attributes)
    LEFT JOIN LATERAL (
        SELECT array_agg(e.event_id), array_agg(e.ts), array_agg(e.type), array_agg(e.body)
        FROM (SELECT event_id, ts, type, body FROM events WHERE person_id = p.person_id
              ORDER BY ts DESC, seq LIMIT {EVENTS}) AS e
    ) AS ev(ids, stamps, types, bodies) ON true
    LEFT JOIN LATERAL (
        SELECT array_agg(au.id), array_agg(au.name) FROM audiences AS au
        WHERE au.id IN (
            SELECT jsonb_object_keys(s.ups)
            FROM (SELECT a.attributes::jsonb #> '{{segmentMembership,ups}}' OFFSET 0) AS s(ups)
            WHERE jsonb_typeof(s.ups) = 'object')
    ) AS au(ids, names) ON true
) AS b({BUNDLED})
CROSS JOIN LATERAL (
    SELECT {person_columns(COMPUTED, 'b.person_id').replace(':computed_now', ':built_at')}
) AS kept({', '.join(f'kept{n}' for n in range(len(COMPUTED)))})
"""  # noqa: S608 - constants


class CardStore(PostgresProfileStore):
    """The store reading a known caller's lookup from ``lookup_cards``; the computed
    attributes worked out in the statement, or read as ``kept`` at the cards' build."""

    def __init__(self, url: str, *, kept: bool, **settings: Any) -> None:
        super().__init__(url, **settings)
        self.kept = kept

    def read_bundle(self, keys: Sequence[tuple[str, str]], since: int | None,
                    deadline: float, computed: Sequence[ComputedAttribute] = (),
                    ) -> Bundle | Unanswered | None:
        params: dict[str, Any] = {"keyspaces": [key[0] for key in keys],
                                  "values": [key[1] for key in keys]}
        if self.kept:
            text = statement((), EVENTS, CARD.format(kept=", " + KEPT))
        else:
            text = statement(tuple(computed), EVENTS, CARD.format(kept=""))
            params |= column_params(datetime.now(UTC))
        row = self._pools.read_one(text, params, deadline)
        return None if row is None else bundle_of(row, computed)


def build_cards(url: str) -> float:
    """``lookup_cards`` built and analysed; the seconds it took."""
    (build,) = translate(BUILD)
    params = column_constants(COMPUTED) | {"built_at": column_params(datetime.now(UTC))[
        "computed_now"]}
    started = time.perf_counter()
    with psycopg.connect(url, autocommit=True,
                         options=f"-c search_path={DEFAULT_SCHEMA}") as connection:
        connection.execute(build.text, params)  # type: ignore[arg-type]  # the store's own SQL
        connection.execute("ALTER TABLE lookup_cards ADD PRIMARY KEY (person_id)")
        connection.execute("VACUUM ANALYZE")
    return time.perf_counter() - started


def run_size(size: int, lookups: int, seed: int, server: str) -> tuple[str, float]:
    """The section's rows for ``size``; and the cards' build time."""
    dataset = ensure_dataset(size, EVENTS, log=lambda text: print(text, file=sys.stderr))
    with scratch_url(server) as url:
        settings: dict[str, Any] = {"region": "US", "event_limit": EVENTS, "computed": COMPUTED}
        stores = {"statement": PostgresProfileStore(url, **settings),
                  "cards, computed in the statement": CardStore(url, kept=False, **settings),
                  "cards, computed kept": CardStore(url, kept=True, **settings)}
        try:
            loader = stores["statement"]
            ingest(loader, "audiences", dataset.audiences, dataset.n_audiences)
            ingest(loader, "profiles", dataset.profiles, size)
            ingest(loader, "events", dataset.events, dataset.n_events)
            built_s = build_cards(url)
            rng = random.Random(seed)
            callers = [caller(phone_of(rng.randrange(size))) for _ in range(WARM_UP + lookups)]
            samples: dict[str, list[float]] = {name: [] for name in stores}
            for n, identities in enumerate(callers):
                found: dict[str, Any] = {}
                for name, store in stores.items():
                    started = time.perf_counter()
                    found[name] = store.lookup(identities, time.monotonic() + DEADLINE_S)
                    if n >= WARM_UP:
                        samples[name].append((time.perf_counter() - started) * 1000)
                check(found)
        finally:
            for store in stores.values():
                store.close()
    base = statistics.median(samples["statement"])
    rows = [f"| {size:,} | {name} | {statistics.median(ms):.3f} | {percentile(ms, 99):.3f} | "
            f"{statistics.median(ms) / base:.2f}× |" for name, ms in samples.items()]
    return "\n".join(rows), built_s


def check(found: dict[str, Any]) -> None:
    """The cards' profiles are the statement's (the kept computed values, taken a moment
    earlier, may differ only where a window's edge passed an event meanwhile)."""
    expected = found["statement"]
    if not isinstance(expected, Profile):
        raise RuntimeError(f"a known caller was not found: {expected!r}")
    for name, profile in found.items():
        if not isinstance(profile, Profile):
            raise RuntimeError(f"{name}: a known caller was not found")
        same = profile.model_copy(update={"attributes": {**profile.attributes, "_computed": {}}})
        if same != expected.model_copy(update={"attributes": {**expected.attributes,
                                                              "_computed": {}}}):
            raise RuntimeError(f"{name}: a profile differs from the statement's")
        if name == "cards, computed in the statement" and profile != expected:
            raise RuntimeError(f"{name}: computed attributes differ from the statement's")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="10000,1000000")
    parser.add_argument("--lookups", type=int, default=5000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--server", default=SERVER_URL)
    parser.add_argument("--no-record", action="store_true")
    args = parser.parse_args()
    sizes = sorted({int(size) for size in args.sizes.split(",") if size.strip()})
    rows, builds = [], []
    for size in sizes:
        table, built_s = run_size(size, args.lookups, args.seed, args.server)
        rows.append(table)
        builds.append(f"{size:,} profiles: {built_s:.1f} s")
    command = (f".venv/bin/python -m bench.lookup_cards_postgres --sizes "
               f"{','.join(map(str, sizes))} --lookups {args.lookups}")
    body = f"""`{command}` — {machine()}; store code {code_revision()}.

A design measurement, not the product: see the module's docstring. Each size loaded into a
PostgreSQL database of its own through `store.ingest`, then `lookup_cards` built from it
(one row per person: what the lookup's statement reads, and the values of `COMPUTED` at
the build), then {args.lookups:,} random known callers after {WARM_UP} warm-up lookups, each
looked up three ways in turn through `store.lookup` (keys, pool, one statement over local
TCP, the `Profile`), on one thread; PostgreSQL on the same 2 cores, its default settings.
Every card's profile was checked against the statement's. Milliseconds.

| profiles | lookup | p50 | p99 | p50 / statement's |
|---|---|---|---|---|
{chr(10).join(rows)}

Building the cards took {'; '.join(builds)}.
"""
    print(body)
    if not args.no_record:
        record(SECTION, body)


if __name__ == "__main__":
    main()
