-- The embedded profile store: an identity graph over profile fragments and events.
--
-- A person is a connected set of identities. Every fragment, event and identity row
-- carries its person_id; when a record links two persons, the smaller one's rows are
-- relabelled to the larger one. merged_profiles is the read model: one row per person,
-- refreshed on ingest, so a lookup never merges fragments itself.
-- Timestamps are integer microseconds since the Unix epoch, UTC.

CREATE TABLE IF NOT EXISTS meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS persons (
    person_id  INTEGER PRIMARY KEY,
    uid        TEXT NOT NULL UNIQUE,   -- the public profile_id; survives merges of others into it
    created_at INTEGER NOT NULL
);

-- keyspace is the namespace for matching: every phone namespace shares the keyspace
-- "phone", so a number ingested under Phone is found by a Phone_E.164 lookup.
CREATE TABLE IF NOT EXISTS identities (
    keyspace  TEXT NOT NULL,
    value     TEXT NOT NULL,
    namespace TEXT NOT NULL,
    person_id INTEGER NOT NULL,
    first_seen INTEGER NOT NULL,
    PRIMARY KEY (keyspace, value, namespace)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS identities_person ON identities (person_id);

-- One fragment per dataset and primary identity; a newer version replaces it.
CREATE TABLE IF NOT EXISTS fragments (
    dataset      TEXT NOT NULL,
    key_space    TEXT NOT NULL,
    key_value    TEXT NOT NULL,
    person_id    INTEGER NOT NULL,
    modified_at  INTEGER NOT NULL,     -- _repo.lastModifiedDate, else the ingest time
    ingested_seq INTEGER NOT NULL,     -- breaks ties in arrival order
    attributes   TEXT NOT NULL,        -- the XDM record minus identityMap, JSON
    PRIMARY KEY (dataset, key_space, key_value)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS fragments_person ON fragments (person_id, modified_at, ingested_seq);

CREATE TABLE IF NOT EXISTS events (
    event_id  TEXT NOT NULL UNIQUE,
    person_id INTEGER NOT NULL,
    ts        INTEGER NOT NULL,
    type      TEXT NOT NULL,
    dataset   TEXT NOT NULL,
    body      TEXT NOT NULL            -- the event minus _id, timestamp, eventType, identityMap
);
CREATE INDEX IF NOT EXISTS events_person_ts ON events (person_id, ts DESC);

CREATE TABLE IF NOT EXISTS audiences (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    description TEXT
) WITHOUT ROWID;

-- The read model: the merged attributes and every identity of the person, as JSON.
CREATE TABLE IF NOT EXISTS merged_profiles (
    person_id  INTEGER PRIMARY KEY,
    uid        TEXT NOT NULL,
    attributes TEXT NOT NULL,
    identities TEXT NOT NULL,          -- [[namespace, value], ...]
    refreshed_at INTEGER NOT NULL
);
