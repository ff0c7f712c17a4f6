-- The embedded profile store: an identity graph over profile fragments and events.
--
-- A node of the graph is a person, or a shared identity (a family landline): an identity
-- that would link people holding different values of a unique namespace, so it links
-- nobody and points at each person it touches instead (shared_links). Every fragment,
-- event and identity row carries its node's person_id; when a record links two persons,
-- the smaller one's rows are relabelled to the larger one. A person's row holds its
-- materialised profile (merged attributes and identities), refreshed on ingest, so a
-- lookup never merges fragments itself; a person of a single fragment reads that
-- fragment's attributes instead of a copy of them.
-- Timestamps are integer microseconds since the Unix epoch, UTC.

CREATE TABLE IF NOT EXISTS meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
) WITHOUT ROWID;

-- uid is the public profile_id: the person_id in hex, then random hex, so that it needs no
-- index of its own and cannot be guessed; it survives merges of others into the person.
CREATE TABLE IF NOT EXISTS persons (
    person_id    INTEGER PRIMARY KEY,
    uid          TEXT NOT NULL,
    shared       INTEGER NOT NULL,      -- 1 for a shared identity's node, 0 for a person
    created_at   INTEGER NOT NULL,
    attributes   TEXT,                  -- merged XDM attributes, JSON; NULL: the only fragment's
    identities   TEXT NOT NULL,         -- [[namespace, value], ...], oldest first
    refreshed_at INTEGER NOT NULL
);

-- keyspace is the namespace for matching: every phone namespace shares the keyspace
-- "phone", so a number ingested under Phone is found by a Phone_E.164 lookup. seq is the
-- first-seen ingest order: a graph over its identity cap drops the lowest first.
CREATE TABLE IF NOT EXISTS identities (
    keyspace  TEXT NOT NULL,
    value     TEXT NOT NULL,
    namespace TEXT NOT NULL,
    person_id INTEGER NOT NULL,
    seq       INTEGER NOT NULL,
    PRIMARY KEY (keyspace, value, namespace)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS identities_person ON identities (person_id, seq);

CREATE TABLE IF NOT EXISTS shared_links (
    shared_id INTEGER NOT NULL,         -- the shared identity's node
    person_id INTEGER NOT NULL,
    PRIMARY KEY (shared_id, person_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS shared_links_person ON shared_links (person_id);

-- A person's fragment per dataset and primary identity; a newer version replaces it (two
-- people's records with one shared primary identity stay two fragments). sole is 1 when
-- the primary identity was the record's only one: if that identity turns out to be
-- shared, the fragment belongs to the shared identity, not to a person. A rowid table
-- keyed by person: rows are large, and a new person's rows are then appended, not
-- inserted all over a key index.
CREATE TABLE IF NOT EXISTS fragments (
    dataset      TEXT NOT NULL,
    key_space    TEXT NOT NULL,
    key_value    TEXT NOT NULL,
    person_id    INTEGER NOT NULL,
    modified_at  INTEGER NOT NULL,     -- _repo.lastModifiedDate, else the ingest time
    ingested_seq INTEGER NOT NULL,     -- breaks ties in arrival order
    sole         INTEGER NOT NULL,
    attributes   TEXT NOT NULL         -- the XDM record without nulls, JSON (identityMap ignored)
);
CREATE UNIQUE INDEX IF NOT EXISTS fragments_key
    ON fragments (person_id, dataset, key_space, key_value);

-- sole_key is "keyspace<US>value" of an event's only identity (NULL when it had several),
-- for the same reason as fragments.sole.
CREATE TABLE IF NOT EXISTS events (
    event_id  TEXT NOT NULL UNIQUE,
    person_id INTEGER NOT NULL,
    ts        INTEGER NOT NULL,
    type      TEXT NOT NULL,
    dataset   TEXT NOT NULL,
    sole_key  TEXT,
    body      TEXT NOT NULL            -- the event minus _id, timestamp, eventType, identityMap
);
CREATE INDEX IF NOT EXISTS events_person_ts ON events (person_id, ts DESC);
CREATE INDEX IF NOT EXISTS events_ts ON events (ts);  -- the retention purge

CREATE TABLE IF NOT EXISTS audiences (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    description TEXT
) WITHOUT ROWID;
