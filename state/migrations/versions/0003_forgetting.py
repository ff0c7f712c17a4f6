"""Forgetting a person: deliveries may be cancelled, and the forget log.

Revision ID: 0003
Revises: 0002

``cahub forget`` cancels a forgotten caller's unfinished deliveries (status ``cancelled``,
which the status check named in 0001 is replaced to allow, and which retention purges like
``done``), and records each forget as keyed digests for every server process to apply
(``state.forgets.postgres``). The digests column is an array of text, the sequence an
identity column: PostgreSQL never hands out a sequence's number twice, even after its row
is deleted or its transaction rolled back, which is what lets a process say "applied up to
N". No index is added on what identifies a caller: a forget finds the person's calls by a
scan of the summaries, and an index of their numbers and emails would be one more place
for them to linger.
"""

from __future__ import annotations

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

CANCELLED = """
ALTER TABLE deliveries DROP CONSTRAINT deliveries_status_known;
ALTER TABLE deliveries ADD CONSTRAINT deliveries_status_known
    CHECK (status IN ('pending', 'in_flight', 'done', 'dead', 'cancelled'));
DROP INDEX deliveries_finished;
CREATE INDEX deliveries_finished ON deliveries (done_at)
    WHERE status IN ('done', 'dead', 'cancelled');
"""

FORGET_LOG = """
CREATE TABLE forget_key (
    id      integer PRIMARY KEY CHECK (id = 1),
    secret  bytea NOT NULL
);
CREATE TABLE forgets (
    seq         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    recorded_at timestamptz NOT NULL,
    digests     text[] NOT NULL
);
CREATE INDEX forgets_recorded ON forgets (recorded_at);
CREATE TABLE forget_confirmations (
    process  text PRIMARY KEY,
    seq      bigint NOT NULL,
    seen_at  timestamptz NOT NULL,
    cleaned  jsonb NOT NULL
);
"""


def upgrade() -> None:
    for script in (CANCELLED, FORGET_LOG):
        op.execute(script)


def downgrade() -> None:
    op.execute("""
DROP TABLE forget_confirmations; DROP TABLE forgets; DROP TABLE forget_key;
UPDATE deliveries SET status = 'dead' WHERE status = 'cancelled';
DROP INDEX deliveries_finished;
CREATE INDEX deliveries_finished ON deliveries (done_at) WHERE status IN ('done', 'dead');
ALTER TABLE deliveries DROP CONSTRAINT deliveries_status_known;
ALTER TABLE deliveries ADD CONSTRAINT deliveries_status_known
    CHECK (status IN ('pending', 'in_flight', 'done', 'dead'));
""")
