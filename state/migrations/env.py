"""Alembic's environment: runs the revisions on the connection ``migrate`` opened and locked."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

from alembic import context
from alembic.runtime.migration import MigrationContext, MigrationInfo

config = context.config


def _record(ctx: MigrationContext, step: MigrationInfo, heads: Collection[Any],
            run_args: Mapping[str, Any]) -> None:
    """Note each revision applied, for ``migrate`` to return."""
    config.attributes["applied"].extend(step.up_revision_ids)


context.configure(connection=config.attributes["connection"], on_version_apply=_record)
with context.begin_transaction():
    context.run_migrations()
