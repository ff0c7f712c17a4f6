"""``cahub outbox``: inspect deliveries, re-queue dead ones, purge finished ones."""

from __future__ import annotations

from datetime import timedelta

import click
from flask import Flask

from app import close_app, services
from cli.command_app import command_app
from hub.models import Delivery
from hub.outbox import STATUSES
from hub.ports import InspectableOutbox


def _outbox(app: Flask) -> InspectableOutbox:
    return services(app).outbox


def _line(d: Delivery) -> str:
    error = f"  {d.last_error}" if d.last_error else ""
    return (f"{d.id:>6}  {d.status:<9} {d.sink}/{d.action.value:<8} {d.call_sid}  "
            f"attempts={d.attempts}  next={d.next_attempt_at:%Y-%m-%d %H:%M:%S}{error}")


@click.group("outbox", invoke_without_command=True)
@click.pass_context
def outbox(ctx: click.Context) -> None:
    """Inspect deliveries (CRM notes, SMS, call logs); with no command, list them."""
    ctx.obj = command_app(start_background=False)
    ctx.call_on_close(lambda: close_app(ctx.obj))
    if ctx.invoked_subcommand is None:
        ctx.invoke(list_deliveries)


@outbox.command("list")
@click.option("--status", type=click.Choice(STATUSES), default=None)
@click.option("--limit", type=click.IntRange(1, 10_000), default=100, show_default=True)
@click.pass_obj
def list_deliveries(app: Flask, status: str | None = None, limit: int = 100) -> None:
    """Show deliveries, newest first, and the count per status."""
    box = _outbox(app)
    counts = box.counts()
    click.echo("  ".join(f"{name}={counts.get(name, 0)}" for name in STATUSES))
    for delivery in box.list(status=status, limit=limit):
        click.echo(_line(delivery))


@outbox.command()
@click.argument("delivery_id", type=int)
@click.pass_obj
def retry(app: Flask, delivery_id: int) -> None:
    """Re-queue dead delivery DELIVERY_ID for an attempt now."""
    box = _outbox(app)
    if not box.retry(delivery_id):
        found = box.get(delivery_id)
        reason = "no such delivery" if found is None else f"it is {found.status}, not dead"
        raise click.ClickException(f"cannot retry {delivery_id}: {reason}")
    click.echo(f"delivery {delivery_id} re-queued")


@outbox.command()
@click.option("--older-than-days", type=click.IntRange(0), default=7, show_default=True)
@click.option("--dead", "include_dead", is_flag=True, help="Purge dead deliveries too.")
@click.pass_obj
def purge(app: Flask, older_than_days: int, include_dead: bool) -> None:
    """Delete done and cancelled deliveries older than the given age (dead ones with
    --dead; pending ones are never purged)."""
    statuses = ("done", "cancelled", "dead") if include_dead else ("done", "cancelled")
    removed = _outbox(app).purge(timedelta(days=older_than_days), statuses=statuses)
    click.echo(f"purged {removed} deliveries")
