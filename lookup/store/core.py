"""``ProfileStore``: the store's public surface, whichever database holds it.

It owns lookup, get_profile, ping, ingest, rebuild, purge_expired, forget, counts and
close, over a backend's transactions (``backend.Connections``): ``EmbeddedProfileStore``
(SQLite, one file, the default; ``embedded``) and ``PostgresProfileStore`` (PostgreSQL,
shared by every server; ``postgres.store``) differ only in their connections and in how
their database's errors become the hub's (``TransientError`` when trying again later
may work, else ``PermanentError``). Nothing is opened until first use.

Changing the merge policy: profiles are merged when their records are ingested, so
after a change they must be merged again. ``ingest`` does that first whenever the
policy differs from the one the store was built with; ``rebuild()`` does it at once
(``needs_rebuild()`` tells). Lookups never rebuild (a million profiles take far longer
than a call may wait): until then they return profiles merged the previous way.

Event retention: events older than ``event_retention_days`` are never returned, are not
stored when ingested, and are deleted at the start of every ingest, or by
``purge_expired()``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from contextlib import AbstractContextManager, nullcontext

from hub.models import AmbiguousMatch, Identity, Profile
from hub.ports import TransientError
from lookup.store.audience_rules import AudienceRule
from lookup.store.backend import Connections
from lookup.store.computed import ComputedAttribute
from lookup.store.deletion import ForgetReport, forget, locate, persons_of, purge_events
from lookup.store.ingest import Kind, Options, ingest_lines, is_bulk
from lookup.store.materialise import rebuild_batches, record_policy, remerge, stored_policy
from lookup.store.merge import MergePolicy, PolicyName
from lookup.store.numbering import person_of_profile_id
from lookup.store.parsing import Line
from lookup.store.read import (
    PERSON,
    SOURCE,
    UNANSWERED,
    Bundle,
    Derivation,
    Unanswered,
    bundled_profile,
    find,
    lookup_key,
    profile_of,
    read_profile,
)
from lookup.store.records import Rules
from lookup.store.report import IngestReport
from lookup.store.validation import FieldMap

COUNTS = {
    "persons": "SELECT count(*) FROM persons WHERE shared = 0",
    **{
        table: f"SELECT count(*) FROM {table}"  # noqa: S608 - table names are constants
        for table in ("fragments", "identities", "events", "audiences")
    },
}
DAY_MICROS = 86_400_000_000
PING_TIMEOUT_S = 2.0  # a health check hears of a database that is away at once


Translator = Callable[[str], AbstractContextManager[None]]


class ProfileStore:
    """Profiles, events and audiences stitched by an identity graph, in ``connections``.

    Safe to share between threads. ``clock`` gives the current time in seconds since the
    epoch (for event retention). With ``ingest_workers``, a large ingest parses its lines
    in that many spawned processes (see ``lookup.store.parsing``); a small one, such as a
    call's write-back, starts none. ``translated(action)`` turns the backend's errors
    into the hub's.
    """

    name = "embedded"  # the provider's name in settings and metrics, whatever the backend

    def __init__(
        self,
        connections: Connections,
        translated: Translator,
        *,
        region: str = "US",
        event_limit: int = 10,
        unique_namespaces: Sequence[str] = ("CRMID", "loyaltyId"),
        max_identities: int = 50,
        merge_policy: PolicyName = "timestamp_ordered",
        dataset_order: Sequence[str] = (),
        event_retention_days: int | None = None,
        ingest_workers: int = 0,
        computed: Sequence[ComputedAttribute] = (),
        audience_rules: Sequence[AudienceRule] = (),
        fields: FieldMap | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if max_identities < 1:
            raise ValueError("max_identities must be at least 1")
        self.region = region
        self.event_limit = event_limit
        self.policy = MergePolicy(merge_policy, tuple(dataset_order))
        self.retention_days = event_retention_days
        self.clock = clock
        self._rules = Rules.of(region, unique_namespaces, fields)
        self._max_identities = max_identities
        self._workers = ingest_workers
        self._connections = connections
        self._translated = translated
        self._derivation = Derivation(tuple(computed), tuple(audience_rules))

    def lookup(
        self, identities: Sequence[Identity], deadline: float
    ) -> Profile | AmbiguousMatch | None:
        """The person known by the first of ``identities`` that resolves, or None; an
        ``AmbiguousMatch`` with every person it touches when that identity is shared.

        The backend may answer in one statement (``read_bundle``); a shared identity, or
        a backend that does not, reads in one read transaction."""
        since = self._events_since()
        computed = self._derivation.computed
        with self._translated("lookup"):
            _check(deadline)
            keys = list(dict.fromkeys(  # Phone and Phone_E.164 of a caller: one key
                key[:2] for key in (lookup_key(i.namespace, i.id, self.region)
                                    for i in identities) if key is not None))
            bundle = self.read_bundle(keys, since, deadline, computed) if keys else None
        if bundle is None:
            return None
        if bundle is not UNANSWERED:
            return bundled_profile(bundle, self._derivation)
        with self._translated("lookup"), self._connections.reading(deadline) as connection:
            _check(deadline)
            found = find(connection, identities, self.region)
            if found is None:
                return None
            if found.row is not None:
                return profile_of(connection, found.row, self.event_limit, since,
                                  self._derivation)
            _check(deadline)
            profiles = (read_profile(connection, p, self.event_limit, since, self._derivation)
                        for p in found.persons)
            candidates = tuple(profile for profile in profiles if profile is not None)
            return AmbiguousMatch(source=SOURCE, identity=found.identity,
                                  count=len(candidates), candidates=candidates)

    def read_bundle(self, keys: Sequence[tuple[str, str]], since: int | None,
                    deadline: float, computed: Sequence[ComputedAttribute] = (),
                    ) -> Bundle | Unanswered | None:
        """The person of the first of ``keys`` (keyspace, value) the store knows, with the
        values of ``computed``, read in one statement by ``deadline``: a ``Bundle``, None
        when no key resolves, or
        ``UNANSWERED`` when the lookup must read the usual way (a shared identity; a
        backend without this path, as SQLite's, where separate reads cost nothing)."""
        return UNANSWERED

    def get_profile(self, profile_id: str) -> Profile | None:
        """The person whose ``Profile.profile_id`` is ``profile_id``, or None."""
        with self._translated("get_profile"), self._connections.reading() as connection:
            person = person_of_profile_id(profile_id)
            row = None if person is None else connection.execute(PERSON, (person,)).fetchone()
            if row is None or row[1] or row[2] != profile_id:
                return None
            return profile_of(connection, row, self.event_limit, self._events_since())

    def ping(self) -> None:
        """Raise ``HubError`` unless the store can be opened and read."""
        with self._translated("ping"), \
                self._connections.reading(time.monotonic() + PING_TIMEOUT_S) as connection:
            connection.execute("SELECT 1 FROM persons LIMIT 1").fetchall()

    def ingest(
        self,
        kind: Kind,
        lines: Iterable[Line],
        *,
        dataset: str = "default",
        progress: Callable[[int], None] | None = None,
        note: Callable[[str], None] | None = None,
        whole_loads: bool = True,
    ) -> IngestReport:
        """Load JSON Lines of ``kind`` (text, or bytes read as UTF-8); bad lines are
        reported, never fatal. ``note`` hears of long steps after the last line is read.
        Only a bulk load runs with the bulk settings (``ingest.BULK_AFTER``) and may
        start worker processes (``parsing.POOL_AFTER``). ``whole_loads=False`` writes
        profiles chunk by chunk however many (the real-time API: under gevent, a whole
        load's writing held the event loop for about half its time)."""
        lines, bulk = is_bulk(lines)
        with self._translated("ingest"), self._connections.bulk() if bulk else nullcontext():
            self._merge_as_configured()
            self.purge_expired()
            options = Options(self._rules, self.policy, self._max_identities,
                              self._events_since(), self._workers, whole_loads)
            return self._load(kind, lines, dataset, options, progress, note, bulk)

    def _load(
        self, kind: Kind, lines: Iterable[Line], dataset: str, options: Options,
        progress: Callable[[int], None] | None, note: Callable[[str], None] | None,
        bulk: bool,
    ) -> IngestReport:
        """Write a load (``bulk``: more than ``ingest.BULK_AFTER`` lines); a backend may
        write bulk loads its own way (PostgreSQL: ``postgres.bulk``)."""
        return ingest_lines(self._connections, kind, lines, dataset=dataset,
                            options=options, progress=progress, note=note)

    def needs_rebuild(self) -> bool:
        """Whether profiles were merged under another policy than this store's."""
        with self._translated("needs_rebuild"), self._connections.reading() as connection:
            stored = stored_policy(connection)
        return stored is not None and stored != self.policy.signature

    def rebuild(self) -> int:
        """Merge every profile again under this store's policy; return how many."""
        with self._translated("rebuild"):
            with self._connections.reading() as connection:
                batches = list(rebuild_batches(connection))
            for batch in batches:
                with self._connections.writing() as connection:
                    remerge(connection, batch, self.policy, time.time_ns() // 1000)
            with self._connections.writing() as connection:
                record_policy(connection, self.policy)
            return sum(len(batch) for batch in batches)

    def purge_expired(self) -> int:
        """Delete the events past the retention; return how many (0 without one)."""
        since = self._events_since()
        if since is None:
            return 0
        with self._translated("purge"), self._connections.writing() as connection:
            return purge_events(connection, since)

    def forget(
        self, namespace: str | None, value: str, *, all_shared: bool = False
    ) -> ForgetReport:
        """Delete everything stored about the person with this identity (see
        ``lookup.store.deletion``); ``PermanentError`` for a shared identity unless
        ``all_shared``, which forgets every person it touches."""
        with self._translated("forget"):
            with self._connections.writing() as connection:
                node = locate(connection, namespace, value, self.region)
                report = ForgetReport(found=False) if node is None else forget(
                    connection, node, all_shared)
            self._connections.vacuum()  # no old version of a deleted row is left behind
            return report

    def people(
        self, namespace: str | None, value: str, *, all_shared: bool = False
    ) -> list[Profile]:
        """The profiles ``forget`` would remove (identities and attributes), removing nothing."""
        with self._translated("people"), self._connections.reading() as connection:
            node = locate(connection, namespace, value, self.region)
            persons = [] if node is None else persons_of(connection, node, all_shared)
            found = (read_profile(connection, p, 0) for p in persons)
            return [profile for profile in found if profile is not None]

    def counts(self) -> dict[str, int]:
        """How many rows each part of the store holds (persons: people, not shared ids)."""
        with self._translated("counts"), self._connections.reading() as connection:
            return {name: connection.execute(query).fetchone()[0] for name, query in COUNTS.items()}

    def close(self) -> None:
        """Close the backend's connections (SQLite: the calling thread's; others close as
        their threads end)."""
        self._connections.close()

    def _merge_as_configured(self) -> None:
        """Before writing: record the policy of a new store, rebuild after a change."""
        if self.needs_rebuild():
            self.rebuild()
            return
        with self._connections.writing() as connection:
            if stored_policy(connection) is None:
                record_policy(connection, self.policy)

    def _events_since(self) -> int | None:
        if self.retention_days is None:
            return None
        return int(self.clock() * 1_000_000) - self.retention_days * DAY_MICROS


def _check(deadline: float) -> None:
    if time.monotonic() > deadline:
        raise TransientError("profile store lookup ran past its deadline")

