"""The ``cahub`` command line (PRODUCT.md §4)."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import IO, TYPE_CHECKING, Literal, get_args

import click

from app import close_app, services
from cli.command_app import command_app
from cli.demo import demo
from cli.forget import forget
from cli.outbox import outbox
from cli.store_copy import store
from cli.voice_sdk import voice_sdk
from cli.worker import worker
from hub.models import CallerKind
from hub.privacy import configure_logging
from hub.render import summary_text
from hub.summary import build_summary, caller_info
from integrations.simulate import simulate_call
from lookup.store import IngestReport, ProfileStore
from lookup.store.validation import MAX_LINE_BYTES
from web.serving import development_handler

Kind = Literal["profiles", "events", "audiences"]
KINDS = get_args(Kind)
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")

if TYPE_CHECKING:
    from click._termui_impl import ProgressBar


@click.group()
@click.version_option(package_name="customer-activity-hub")
@click.option("--log-level", type=click.Choice(LOG_LEVELS, case_sensitive=False), default="INFO",
              show_default=True, envvar="CAHUB_LOG_LEVEL",
              help="How much to log (masked at every level).")
def main(log_level: str) -> None:
    """Customer Activity Hub: Twilio calls in, customer profiles on the agent's screen."""
    configure_logging(log_level.upper())


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=5000, show_default=True, envvar="PORT", type=int)
def serve(host: str, port: int) -> None:
    """Run the server (development server; see the README for gunicorn)."""
    app = command_app(serving_on=host)
    handler = development_handler(services(app).settings.body_timeout_s)
    app.run(host=host, port=port, threaded=True, request_handler=handler)


def _open(name: str) -> IO[bytes]:
    """The file as bytes: the store decodes each line, so a bad byte costs one line."""
    if name == "-":
        return sys.stdin.buffer
    try:
        return open(name, "rb")
    except OSError as exc:
        raise click.ClickException(f"cannot read {name}: {exc.strerror}") from exc


def _lines(handle: IO[bytes]) -> Iterator[bytes]:
    """The lines of ``handle``, each read up to one byte past the longest the store takes
    (it rejects that one): a line without end never fills the memory."""
    while line := handle.readline(MAX_LINE_BYTES + 1):
        if len(line) > MAX_LINE_BYTES and not line.endswith(b"\n"):
            while (rest := handle.readline(1 << 16)) and not rest.endswith(b"\n"):
                pass
        yield line


def _line_count(name: str) -> int | None:
    if name == "-":
        return None
    with open(name, "rb") as handle:
        return sum(chunk.count(b"\n") for chunk in iter(lambda: handle.read(1 << 20), b""))


def ingest_file(store: ProfileStore, kind: Kind, name: str, dataset: str) -> IngestReport:
    """Load one JSON Lines file with a progress bar on stderr."""
    handle = _open(name)
    label = "stdin" if name == "-" else Path(name).name
    try:
        bar: ProgressBar[bytes] = click.progressbar(
            _lines(handle), length=_line_count(name), label=f"{kind} {label}",
            file=sys.stderr, show_pos=True)
        noted: list[str] = []

        def note(text: str) -> None:
            if not noted:
                click.echo(err=True)  # ends the progress bar's line
            click.echo(f"{label}: {text}…", err=True)
            noted.append(text)

        with bar as lines:
            return store.ingest(kind, lines, dataset=dataset, note=note)
    finally:
        if name != "-":
            handle.close()


def _report(name: str, report: IngestReport) -> None:
    for rejection in report.rejected:
        click.echo(f"{name}:{rejection.line}: rejected: {rejection.reason}", err=True)
    for warning in report.warnings:
        click.echo(f"{name}:{warning.line}: warning: {warning.reason}", err=True)
    warned = len(report.warnings)
    warnings = f", {warned} warning{'s' if warned > 1 else ''}" if warned else ""
    click.echo(f"{name}: {report.loaded} loaded, {len(report.rejected)} rejected{warnings}")


@main.command()
@click.argument("kind", type=click.Choice(KINDS))
@click.argument("files", nargs=-1, required=True)
@click.option("--dataset", default="default", show_default=True,
              help="Dataset the records belong to (merge policies rank datasets).")
def ingest(kind: Kind, files: tuple[str, ...], dataset: str) -> None:
    """Load XDM JSON Lines FILES (``-`` for stdin) into the profile store."""
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
main.add_command(store)
main.add_command(voice_sdk)
main.add_command(worker)
