"""``cahub forget``: a data subject request, carried out everywhere the hub keeps the person.

The embedded store removes the person's profile, events and identity links; the hub's
own state loses them too (``hub.forgetting``): call records are redacted, deliveries
cancelled or emptied, their calls taken off the agents' desks, every running server drops
them (their pops and call states) from memory, and the database
files are left with no trace of them. The command says what it removed from each place.
"""

from __future__ import annotations

import click

from app import HUB_FILE, STORE_FILE, HubServices, close_app, services
from cli.command_app import command_app
from hub.forget_guard import EVERY_FORGET
from hub.forget_keys import PersonKeys, given_key
from hub.forgetting import ForgetOutcome
from hub.ports import HubError, PermanentError, TransientError
from lookup.resilience import CachedProvider
from lookup.store import ForgetReport, ProfileStore


@click.command()
@click.argument("identity")
@click.option("--namespace", default=None,
              help="Identity namespace (Phone, Email, CRMID, ...); by default phone "
                   "namespaces, then Email, then any namespace holding the value.")
@click.option("--all-shared", is_flag=True,
              help="For a number shared by several people, forget every one of them.")
def forget(identity: str, namespace: str | None, all_shared: bool) -> None:
    """Forget the person with IDENTITY: the profile store and the hub's own state."""
    app = command_app(start_background=False)
    try:
        hub = services(app)
        report, outcome = _forget(hub, identity, namespace, all_shared)
        hub.hub_db.compact()  # SQLite: the WAL emptied; PostgreSQL: the old row versions vacuumed
        shared, unreached = _empty_shared_caches(hub)
    except HubError as exc:  # refused (a shared number), or the database failed: one line
        message = str(exc).replace("pass all_shared=True", "pass --all-shared")
        raise click.ClickException(message) from exc
    finally:
        close_app(app)
    for line in _lines(report, outcome, postgres=hub.settings.database_url is not None) + shared:
        click.echo(line)
    if outcome.unconfirmed:
        raise click.ClickException(
            f"{len(outcome.unconfirmed)} server process(es) did not confirm within the wait: "
            f"{', '.join(outcome.unconfirmed)}; what they hold in memory may still name the "
            "person until they do. Run the command again once they answer.")
    if unreached:
        raise click.ClickException(
            f"Redis could not be reached ({unreached}): the remote providers' shared cache "
            "may still hold the person until its entries expire. Run the command again once "
            "it answers.")


def _forget(hub: HubServices, identity: str, namespace: str | None,
            all_shared: bool) -> tuple[ForgetReport, ForgetOutcome]:
    store = hub.store
    people = store.people(namespace, identity, all_shared=all_shared)
    keys = PersonKeys.of(given_key(identity, namespace, store.region), people,
                         hub.settings.hub.fields)
    removed: list[ForgetReport] = []

    def erase() -> None:
        removed.append(store.forget(namespace, identity, all_shared=all_shared))

    outcome = hub.forgetting.forget(keys, erase, lambda wider: _sweep(store, wider))
    return removed[0], outcome


def _empty_shared_caches(hub: HubServices) -> tuple[list[str], str | None]:
    """Empty the remote providers' caches in Redis from here too: with no server running
    none would, and a server started later applies no earlier forget. The line to print,
    and the error when Redis could not be reached."""
    caches = [p for p in hub.providers if isinstance(p, CachedProvider) and p.shares]
    if not caches:
        return [], None
    try:
        dropped = sum(cache.forget() for cache in caches)
    except TransientError as exc:
        return [], str(exc)
    return [f"Shared cache: {dropped} remote provider answer(s) dropped from Redis."], None


def _sweep(store: ProfileStore, keys: PersonKeys) -> int:
    """Forget the person again by each identifier: what was written back meanwhile."""
    rows = 0
    for key in sorted(keys.keys):
        kind, value = key.split(":", 1)
        if kind not in ("number", "email", "identity"):
            continue
        try:
            report = store.forget(None, value)
        except PermanentError:  # a shared identifier: it names others too, keep it
            continue
        rows += report.fragments + report.events + report.identities
    return rows


def _lines(report: ForgetReport, outcome: ForgetOutcome, postgres: bool) -> list[str]:
    store = (f"removed {report.persons} person(s): {report.fragments} profile fragment(s), "
             f"{report.events} event(s), {report.identities} identity link(s)"
             if report.found else "nothing is stored for that identity")
    if outcome.swept:
        store += f", and {outcome.swept} row(s) written back while it ran"
    d = outcome.deliveries
    reached = " (one in flight may still have reached its sink)" if d["in_flight"] else ""
    lines = [f"Profile store: {store}.",
             f"Call ledger: {outcome.calls} call record(s) redacted.",
             f"Outbox: {d['pending']} pending and {d['in_flight']} in-flight delivery(ies) "
             f"cancelled{reached}; the payloads of {d['done'] + d['dead'] + d['cancelled']} "
             "finished one(s) emptied.",
             f"Agents' desks: {outcome.desk_calls} call(s) removed (draft notes, outcomes)."]
    for server in outcome.servers:
        cleaned = ", ".join(f"{count} from {place}" for place, count in
                            sorted(server.cleaned.items())) or "nothing held in memory"
        if server.seq >= EVERY_FORGET:
            cleaned = "stopped; it holds nothing"
        lines.append(f"Server {server.process}: {cleaned}.")
    lines.append("PostgreSQL: the profile store's tables and the hub's that were rewritten "
                 "were vacuumed (the removed rows' old versions are gone)." if postgres else
                 f"Files: {STORE_FILE} and {HUB_FILE} keep no trace of the removed rows "
                 "(deleted securely, WAL emptied).")
    return lines
