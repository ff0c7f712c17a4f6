"""The agent desk: each call an agent handles, its progress, draft notes and wrap-up.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

# ``record`` is the ``DeskCall`` as JSON; the columns beside it are what the port queries by.
# Its purge reads the phase and the call's end from the record, over the rows older than its
# cutoff only (``desk_calls_updated``).
DESK = """
CREATE TABLE desk_calls (
    call_sid    text PRIMARY KEY,
    agent_id    text,
    updated_at  timestamptz NOT NULL,
    version     integer NOT NULL,
    record      jsonb NOT NULL
);
CREATE INDEX desk_calls_agent ON desk_calls (agent_id, updated_at);
CREATE INDEX desk_calls_updated ON desk_calls (updated_at);
"""


def upgrade() -> None:
    op.execute(DESK)


def downgrade() -> None:
    op.execute("DROP TABLE desk_calls")
