"""The merged profile of a person, materialised in ``merged_profiles`` on every ingest.

Merge policy, timestamp-ordered (AEP's default): fragments are applied oldest first,
by ``_repo.lastModifiedDate`` or, when a fragment has none, the time it was ingested,
ties broken by arrival order; objects are merged key by key, so the newest fragment
wins per leaf. Lists and scalars are leaves.

The merge runs inside SQLite, as a fold of ``json_patch`` (RFC 7396 merge patch) over
the ordered fragments. A merge patch deletes a key whose new value is null, so nulls
are stripped when a fragment is stored (``json_patch('{}', ?)`` in the upsert): a null
never erases a value, as XDM has no nulls, it only leaves fields out. Another policy
(dataset precedence) only needs another ``ORDER BY`` in ``ordered_fragments``.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Collection

ORDER_FRAGMENTS = (
    """
CREATE TEMP TABLE IF NOT EXISTS ordered_fragments (
    person_id INTEGER, n INTEGER, total INTEGER, attributes TEXT,
    PRIMARY KEY (person_id, n)
) WITHOUT ROWID
""",
    "DELETE FROM ordered_fragments",
    """
INSERT INTO ordered_fragments
SELECT f.person_id, row_number() OVER win, count(*) OVER (PARTITION BY f.person_id), f.attributes
FROM json_each(:persons) AS w JOIN fragments AS f ON f.person_id = w.value
WINDOW win AS (PARTITION BY f.person_id ORDER BY f.modified_at, f.ingested_seq)
""",
)
REFRESH = """
INSERT OR REPLACE INTO merged_profiles (person_id, uid, attributes, identities, refreshed_at)
WITH RECURSIVE folded (person_id, n, total, attributes) AS (
    SELECT person_id, n, total, attributes FROM ordered_fragments WHERE n = 1
    UNION ALL
    SELECT o.person_id, o.n, o.total, json_patch(folded.attributes, o.attributes)
    FROM folded JOIN ordered_fragments AS o ON o.person_id = folded.person_id AND o.n = folded.n + 1
)
SELECT p.person_id, p.uid, coalesce(folded.attributes, '{}'),
       (SELECT json_group_array(json_array(namespace, value)) FROM (
            SELECT namespace, value FROM identities AS i WHERE i.person_id = p.person_id
            ORDER BY first_seen, namespace, value)),
       :now
FROM json_each(:persons) AS w
JOIN persons AS p ON p.person_id = w.value
LEFT JOIN folded ON folded.person_id = p.person_id AND folded.n = folded.total
"""


def refresh(connection: sqlite3.Connection, persons: Collection[int], now: int) -> None:
    """Rebuild the merged-profile rows of ``persons``. Runs inside a write transaction."""
    if not persons:
        return
    wanted = json.dumps(sorted(persons))
    for statement in ORDER_FRAGMENTS:
        connection.execute(statement, {"persons": wanted})
    connection.execute(REFRESH, {"persons": wanted, "now": now})
