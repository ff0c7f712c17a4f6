"""``cahub store copy``: the SQLite store copied into PostgreSQL, for a hub that outgrows
one server (see ``lookup.store.copy``)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from app import STORE_FILE
from hub.settings import Settings
from lookup.store.copy import CopyError, copy_store, describe_url, source_counts
from lookup.store.postgres.schema import DEFAULT_SCHEMA

if TYPE_CHECKING:
    from click._termui_impl import ProgressBar


@click.group()
def store() -> None:
    """The profile store: copy it into PostgreSQL."""


@store.command()
@click.option("--to", "url", required=True, metavar="postgresql://…",
              help="The PostgreSQL database to copy into (CAHUB_DATABASE_URL of the servers).")
@click.option("--from", "source", type=click.Path(path_type=Path), default=None,
              help="The SQLite store file [default: profiles.sqlite3 in CAHUB_DATA_DIR].")
@click.option("--schema", default=DEFAULT_SCHEMA, show_default=True,
              help="The PostgreSQL schema the store's tables live in.")
@click.option("--replace", is_flag=True,
              help="Empty a target that already holds a store (else it is refused).")
def copy(url: str, source: Path | None, schema: str, replace: bool) -> None:
    """Copy the SQLite profile store into PostgreSQL, in one transaction."""
    path = source if source is not None else Path(Settings().data_dir) / STORE_FILE
    try:
        total = sum(source_counts(path).values())
        bar: ProgressBar[int] = click.progressbar(
            length=total, label=f"copying {path.name}", file=sys.stderr, show_pos=True)
        with bar:
            report = copy_store(path, url, schema=schema, replace=replace, progress=bar.update)
    except (CopyError, ValueError) as exc:
        raise click.ClickException(str(exc)) from exc
    rows = ", ".join(f"{count:,} {table}" for table, count in report.counts.items())
    click.echo(f"copied {path} into {describe_url(url)} (schema {report.schema}): {rows}; "
               "counts verified")
