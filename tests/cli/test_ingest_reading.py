"""``cahub ingest`` reads files and stdin as bytes: a bad byte or an endless line costs only
its own line, and every warning is reported with its line number."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from cli.main import main


@pytest.fixture
def runner(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.setenv("CAHUB_DATA_DIR", str(tmp_path / "instance"))
    return CliRunner()


def profile(n: int) -> bytes:
    return json.dumps({"identityMap": {"Email": [{"id": f"p{n}@example.com"}]}}).encode()


def export_with_a_bad_byte(count: int = 3000, bad: int = 2500) -> bytes:
    """``count`` profile lines; line ``bad`` holds a byte that is not UTF-8."""
    lines = [profile(n) for n in range(1, count + 1)]
    lines[bad - 1] = lines[bad - 1].replace(b"@", b"\xff@")
    return b"\n".join(lines) + b"\n"


def test_a_byte_that_is_not_utf8_in_a_file_rejects_its_line_only(runner, tmp_path):
    source = tmp_path / "p.jsonl"
    source.write_bytes(export_with_a_bad_byte())

    result = runner.invoke(main, ["ingest", "profiles", str(source)])

    assert 0 == result.exit_code, result.output
    assert f"{source}: 2999 loaded, 1 rejected" in result.stdout
    assert f"{source}:2500: rejected: not UTF-8: byte 0xff at column" in result.stderr


def test_a_byte_that_is_not_utf8_on_stdin_rejects_its_line_only(runner):
    result = runner.invoke(main, ["ingest", "profiles", "-"], input=export_with_a_bad_byte())

    assert 0 == result.exit_code, result.output
    assert "-: 2999 loaded, 1 rejected" in result.stdout
    assert "-:2500: rejected: not UTF-8: byte 0xff at column" in result.stderr


def test_an_endless_line_is_rejected_and_the_next_one_loads(runner, tmp_path):
    source = tmp_path / "p.jsonl"
    source.write_bytes(profile(1) + b"\n" + b"x" * (5 << 20) + b"\n" + profile(2) + b"\n")

    result = runner.invoke(main, ["ingest", "profiles", str(source)])

    assert 0 == result.exit_code, result.output
    assert f"{source}: 2 loaded, 1 rejected" in result.stdout
    assert f"{source}:2: rejected: line too long" in result.stderr


def test_a_file_saved_with_a_byte_order_mark_loads_its_first_line(runner, tmp_path):
    source = tmp_path / "p.jsonl"
    source.write_bytes(b"\xef\xbb\xbf" + profile(1) + b"\r\n" + profile(2) + b"\r\n")

    result = runner.invoke(main, ["ingest", "profiles", str(source)])

    assert f"{source}: 2 loaded, 0 rejected" in result.stdout


def test_a_dropped_field_is_reported_with_its_line(runner, tmp_path):
    record = {"identityMap": {"Email": [{"id": "a@example.com"}]},
              "_cah": {"scores": {"churnPropensity": 1.7}}}
    source = tmp_path / "p.jsonl"
    source.write_bytes(profile(1) + b"\n" + json.dumps(record).encode() + b"\n")

    result = runner.invoke(main, ["ingest", "profiles", str(source)])

    assert f"{source}: 2 loaded, 0 rejected, 1 warning" in result.stdout
    assert (f"{source}:2: warning: dropped _cah.scores.churnPropensity (churn_propensity): "
            "1.7 is outside 0..1") in result.stderr
