"""Console sessions ended before their time (logouts), shared by every server.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("""
CREATE TABLE revoked_sessions (
    session_id  text PRIMARY KEY,
    expires_at  timestamptz NOT NULL
);
CREATE INDEX revoked_sessions_expiry ON revoked_sessions (expires_at);
""")


def downgrade() -> None:
    op.execute("DROP TABLE revoked_sessions")
