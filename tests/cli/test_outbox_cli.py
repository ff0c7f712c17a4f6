"""``cahub outbox`` on either backend: list, retry a dead delivery, purge finished ones."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from app import close_app, create_app, services
from cli.main import main
from hub.models import DeliveryAction, NewDelivery
from hub.ports import InspectableOutbox
from tests.e2e.hub_process import free_port
from tests.support import make_settings


def note(call: int) -> NewDelivery:
    return NewDelivery(call_sid=f"CA{call:032x}", sink="crm", action=DeliveryAction.NOTE,
                       payload={"text": f"call {call}"})


@pytest.fixture(params=["sqlite", "postgres"])
def outbox(request: pytest.FixtureRequest, tmp_path: Path,
           monkeypatch: pytest.MonkeyPatch) -> Iterator[InspectableOutbox]:
    """The outbox ``cahub outbox`` will see, with one delivery done and one dead."""
    url = request.getfixturevalue("postgres_url") if request.param == "postgres" else None
    monkeypatch.setenv("CAHUB_DATA_DIR", str(tmp_path))
    if url:
        monkeypatch.setenv("CAHUB_DATABASE_URL", url)
    app = create_app(make_settings(tmp_path, database_url=url), start_background=False)
    box = services(app).outbox
    box.enqueue([note(1), note(2)])
    done, dead = box.claim_due(2)
    box.mark_done(done.id)
    box.mark_failed(dead.id, "401 invalid credentials", None)
    yield box
    close_app(app)


def test_list_shows_the_counts_and_the_deliveries(outbox: InspectableOutbox) -> None:
    result = CliRunner().invoke(main, ["outbox", "list", "--status", "dead"])
    lines = result.stdout.splitlines()
    assert (0, "pending=0  in_flight=0  done=1  dead=1  cancelled=0", 2) == (
        result.exit_code, lines[0], len(lines))
    assert "401 invalid credentials" in lines[1]


def test_retry_requeues_a_dead_delivery(outbox: InspectableOutbox) -> None:
    [dead] = outbox.list(status="dead")
    result = CliRunner().invoke(main, ["outbox", "retry", str(dead.id)])
    assert (0, "pending") == (result.exit_code, outbox.get(dead.id).status)


def test_retry_of_a_delivery_that_is_not_dead_says_why(outbox: InspectableOutbox) -> None:
    [done] = outbox.list(status="done")
    result = CliRunner().invoke(main, ["outbox", "retry", str(done.id)])
    assert (1, f"cannot retry {done.id}: it is done, not dead") == (
        result.exit_code, result.stderr.strip().removeprefix("Error: "))


def test_purge_removes_finished_deliveries_and_keeps_dead_ones(outbox: InspectableOutbox) -> None:
    result = CliRunner().invoke(main, ["outbox", "purge", "--older-than-days", "0"])
    assert (0, "purged 1 deliveries", ["dead"]) == (
        result.exit_code, result.stdout.strip(), [d.status for d in outbox.list()])


def test_an_unreachable_database_ends_the_command_in_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CAHUB_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("CAHUB_DATABASE_URL",
                       f"postgresql://127.0.0.1:{free_port()}/cahub?connect_timeout=2")
    result = CliRunner().invoke(main, ["outbox", "list"])
    assert (1, True, False) == (
        result.exit_code,
        result.stderr.startswith("Error: cannot start: opening the hub database: connection"),
        "Traceback" in result.output)
