"""The ``cahub`` command line: ingest counts and rejections, lookup output."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import requests
from click.testing import CliRunner

from cli.main import main

ADA = {"identityMap": {"Phone": [{"id": "(415) 555-0134", "primary": True}],
                       "Email": [{"id": "ada@example.com"}]},
       "person": {"name": {"firstName": "Ada", "lastName": "Lovelace"}},
       "loyalty": {"tier": "gold"}}
BOB = {"identityMap": {"Email": [{"id": "bob@example.com", "primary": True}]},
       "person": {"name": {"firstName": "Bob"}}}


@pytest.fixture
def runner(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.setenv("CAHUB_DATA_DIR", str(tmp_path / "instance"))
    return CliRunner()


def write_lines(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_ingest_counts_loaded_and_rejected_lines(runner: CliRunner, tmp_path: Path) -> None:
    source = write_lines(tmp_path / "p.jsonl",
                         [json.dumps(ADA), "{not json", json.dumps(BOB), "[1, 2]"])
    result = runner.invoke(main, ["ingest", "profiles", str(source), "--dataset", "crm"])
    assert 0 == result.exit_code, result.output
    assert f"{source}: 2 loaded, 2 rejected" in result.stdout
    assert f"{source}:2: rejected:" in result.stderr
    assert f"{source}:4: rejected:" in result.stderr


def test_with_a_database_url_ingest_loads_into_postgresql_for_every_server(
        runner: CliRunner, tmp_path: Path, postgres_url: str,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CAHUB_DATABASE_URL", postgres_url)
    source = write_lines(tmp_path / "p.jsonl", [json.dumps(ADA), json.dumps(BOB)])

    result = runner.invoke(main, ["ingest", "profiles", str(source)])

    assert f"{source}: 2 loaded, 0 rejected" in result.stdout, result.output
    assert not list((tmp_path / "instance").glob("profiles.sqlite3*"))
    # Another host: a data directory of its own, the same database.
    monkeypatch.setenv("CAHUB_DATA_DIR", str(tmp_path / "elsewhere"))
    assert runner.invoke(main, ["lookup", "4155550134"]).stdout.startswith("Ada Lovelace")


def test_ingest_reads_stdin(runner: CliRunner) -> None:
    result = runner.invoke(main, ["ingest", "profiles", "-"], input=json.dumps(ADA) + "\n")
    assert "-: 1 loaded, 0 rejected" in result.stdout


def test_ingest_of_a_missing_file_is_a_clear_error(runner: CliRunner, tmp_path: Path) -> None:
    result = runner.invoke(main, ["ingest", "events", str(tmp_path / "nope.jsonl")])
    assert 1 == result.exit_code
    assert "cannot read" in result.stderr


def test_lookup_prints_the_summary_for_a_person(runner: CliRunner, tmp_path: Path) -> None:
    runner.invoke(main, ["ingest", "profiles", str(write_lines(tmp_path / "p.jsonl",
                                                               [json.dumps(ADA)]))])
    result = runner.invoke(main, ["lookup", "+1 415 555 0134"])
    assert result.stdout.startswith("Ada Lovelace +14155550134\n")
    assert "Loyalty tier: gold" in result.stdout


def test_lookup_json_prints_only_the_summary_json(runner: CliRunner, tmp_path: Path) -> None:
    runner.invoke(main, ["ingest", "profiles", str(write_lines(tmp_path / "p.jsonl",
                                                               [json.dumps(ADA)]))])
    result = runner.invoke(main, ["lookup", "4155550134", "--json"])
    summary = json.loads(result.stdout)
    assert (True, "Ada Lovelace", "gold") == (summary["found"], summary["name"],
                                             summary["loyalty_tier"])


def test_lookup_of_an_unusable_number_fails_clearly(runner: CliRunner) -> None:
    result = runner.invoke(main, ["lookup", "anonymous"])
    assert 2 == result.exit_code
    assert "not a usable phone number" in result.stderr


def test_simulate_call_can_hang_up_with_signed_status_callbacks(
    runner: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from app import close_app, create_app, services
    from tests.e2e.browser import serve
    from tests.support import AUTH_TOKEN, make_settings

    app = create_app(make_settings(tmp_path / "hub"))
    monkeypatch.setenv("CAHUB_TWILIO_AUTH_TOKEN", AUTH_TOKEN)
    try:
        with serve(app) as base:
            result = runner.invoke(main, ["simulate-call", "--from", "+14155550134",
                                          "--url", base, "--hangup-after", "0"])
        text = services(app).metrics.exposition().decode()
    finally:
        close_app(app)
    assert 0 == result.exit_code, result.output
    assert "completed -> HTTP 200" in result.stderr
    assert 'cahub_calls_ended_total{status="completed"} 1.0' in text


def test_simulate_call_tells_in_one_line_when_the_hub_goes_away_before_the_hang_up(
    runner: CliRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    import responses

    from tests.support import AUTH_TOKEN

    monkeypatch.setenv("CAHUB_TWILIO_AUTH_TOKEN", AUTH_TOKEN)
    base = "http://127.0.0.1:5999"
    with responses.RequestsMock() as mock:
        mock.post(f"{base}/twilio/voice", body="<Response/>", status=200)
        mock.post(f"{base}/twilio/status",
                  body=requests.ConnectionError("[Errno 111] Connection refused"))
        result = runner.invoke(main, ["simulate-call", "--from", "+14155550134",
                                      "--url", base, "--hangup-after", "0"])

    assert 1 == result.exit_code
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert f"could not reach the hub at {base}/twilio/status" in result.stderr
    assert "Traceback" not in result.output


@pytest.mark.parametrize("command", [["serve"], ["demo"], ["outbox"], ["lookup", "+14155550134"]])
def test_a_sink_setting_that_cannot_work_ends_the_command_in_one_line(
    runner: CliRunner, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, command: list[str],
) -> None:
    monkeypatch.setenv("CAHUB_CRM", "salesforce")
    monkeypatch.setenv("CAHUB_SALESFORCE_BASE_URL", "https://acme.my.salesforce.test")
    monkeypatch.setenv("CAHUB_SALESFORCE_CLIENT_ID", "consumer-key")
    monkeypatch.setenv("CAHUB_SALESFORCE_USERNAME", "integration@acme.example")
    monkeypatch.setenv("CAHUB_SALESFORCE_PRIVATE_KEY_FILE", str(tmp_path / "missing.key"))

    result = runner.invoke(main, command)

    assert 1 == result.exit_code
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert "Error: configuration: CAHUB_SALESFORCE_PRIVATE_KEY_FILE: cannot read" in result.stderr
