"""The ``cahub`` command line (PRODUCT.md §4)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import IO, TYPE_CHECKING, Literal, get_args

import click

from app import close_app, services
from cli.command_app import command_app
from cli.demo import demo
from cli.forget import forget
from cli.outbox import outbox
from hub.models import CallerKind
from hub.privacy import configure_logging
from hub.render import summary_text
from hub.summary import build_summary, caller_info
from integrations.simulate import simulate_call
from lookup.store import EmbeddedProfileStore, IngestReport

Kind = Literal["profiles", "events", "audiences"]
KINDS = get_args(Kind)

if TYPE_CHECKING:
    from click._termui_impl import ProgressBar


@click.group()
@click.version_option(package_name="customer-activity-hub")
def main() -> None:
    """Customer Activity Hub: Twilio calls in, customer profiles on the agent's screen."""
    configure_logging()


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=5000, show_default=True, envvar="PORT", type=int)
def serve(host: str, port: int) -> None:
    """Run the server (development server; see the README for gunicorn)."""
    app = command_app()
    app.run(host=host, port=port, threaded=True)


def _open(name: str) -> IO[str]:
    if name == "-":
        return sys.stdin
    try:
        return open(name, encoding="utf-8")
    except OSError as exc:
        raise click.ClickException(f"cannot read {name}: {exc.strerror}") from exc


def _line_count(name: str) -> int | None:
    if name == "-":
        return None
    with open(name, "rb") as handle:
        return sum(chunk.count(b"\n") for chunk in iter(lambda: handle.read(1 << 20), b""))


def ingest_file(store: EmbeddedProfileStore, kind: Kind, name: str, dataset: str) -> IngestReport:
    """Load one JSON Lines file with a progress bar on stderr."""
    handle = _open(name)
    label = "stdin" if name == "-" else Path(name).name
    try:
        bar: ProgressBar[str] = click.progressbar(
            handle, length=_line_count(name), label=f"{kind} {label}", file=sys.stderr,
            show_pos=True)
        noted: list[str] = []

        def note(text: str) -> None:
            if not noted:
                click.echo(err=True)  # ends the progress bar's line
            click.echo(f"{label}: {text}…", err=True)
            noted.append(text)

        with bar as lines:
            return store.ingest(kind, lines, dataset=dataset, note=note)
    finally:
        if handle is not sys.stdin:
            handle.close()


def _report(name: str, report: IngestReport) -> None:
    for rejection in report.rejected:
        click.echo(f"{name}:{rejection.line}: rejected: {rejection.reason}", err=True)
    click.echo(f"{name}: {report.loaded} loaded, {len(report.rejected)} rejected")


@main.command()
@click.argument("kind", type=click.Choice(KINDS))
@click.argument("files", nargs=-1, required=True)
@click.option("--dataset", default="default", show_default=True,
              help="Dataset the records belong to (merge policies rank datasets).")
def ingest(kind: Kind, files: tuple[str, ...], dataset: str) -> None:
    """Load XDM JSON Lines FILES (``-`` for stdin) into the embedded store."""
    app = command_app(start_background=False)
    try:
        for name in files:
            _report(name, ingest_file(services(app).store, kind, name, dataset))
    finally:
        close_app(app)


@main.command()
@click.argument("phone")
@click.option("--json", "as_json", is_flag=True, help="Print the summary JSON only.")
def lookup(phone: str, as_json: bool) -> None:
    """Print the summary for a caller number, as the agent would see it."""
    app = command_app(start_background=False)
    try:
        hub = services(app)
        caller = hub.calls.classify(phone)
        if caller.kind is not CallerKind.NUMBER:
            raise click.BadParameter(f"not a usable phone number ({caller.kind.value})",
                                     param_hint="PHONE")
        result = hub.calls.lookup(caller)
        summary = build_summary(caller_info(caller), result.identity, result.profile,
                                result.elapsed_ms, hub.settings.hub.fields)
    finally:
        close_app(app)
    text = json.dumps(summary.to_json_dict(), ensure_ascii=False) if as_json else \
        summary_text(summary)
    click.echo(text)


main.add_command(demo)
main.add_command(forget)
main.add_command(outbox)
main.add_command(simulate_call)
