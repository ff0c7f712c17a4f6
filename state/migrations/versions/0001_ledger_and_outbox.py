"""The call ledger and the outbox.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

CALLS = """
CREATE TABLE calls (
    call_sid    text PRIMARY KEY,
    agent_id    text,
    summary     jsonb NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE call_status (
    call_sid     text PRIMARY KEY,
    status       text NOT NULL,
    sequence     integer NOT NULL,
    duration_s   integer,
    completed_at timestamptz
);
"""

# The status check is named, so a later revision can replace it when a status is added.
DELIVERIES = """
CREATE TABLE deliveries (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    call_sid        text NOT NULL,
    sink            text NOT NULL,
    action          text NOT NULL,
    payload         jsonb NOT NULL,
    status          text NOT NULL DEFAULT 'pending',
    attempts        integer NOT NULL DEFAULT 0,
    last_error      text,
    created_at      timestamptz NOT NULL,
    next_attempt_at timestamptz NOT NULL,
    leased_until    timestamptz,
    done_at         timestamptz,
    CONSTRAINT deliveries_status_known
        CHECK (status IN ('pending', 'in_flight', 'done', 'dead')),
    CONSTRAINT deliveries_once UNIQUE (call_sid, sink, action)
);
CREATE INDEX deliveries_due ON deliveries (next_attempt_at, id) WHERE status = 'pending';
CREATE INDEX deliveries_leased ON deliveries (leased_until) WHERE status = 'in_flight';
CREATE INDEX deliveries_finished ON deliveries (done_at) WHERE status IN ('done', 'dead');
"""

# A queue table churns: every row is inserted, updated a few times and deleted. Vacuum it
# after 1% of its rows are dead rather than the default 20%, so dead tuples never pile up
# under the claims (https://planetscale.com/blog/keeping-a-postgres-queue-healthy).
VACUUM = """
ALTER TABLE deliveries SET (autovacuum_vacuum_scale_factor = 0.01,
                            autovacuum_vacuum_threshold = 1000);
"""


def upgrade() -> None:
    for script in (CALLS, DELIVERIES, VACUUM):
        op.execute(script)


def downgrade() -> None:
    op.execute("DROP TABLE deliveries; DROP TABLE call_status; DROP TABLE calls;")
