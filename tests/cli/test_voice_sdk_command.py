"""``cahub voice-sdk``: the set-up step that installs the softphone's SDK."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from cli.main import main
from integrations.voice_sdk import script_path


@pytest.fixture
def runner(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.setenv("CAHUB_DATA_DIR", str(tmp_path / "instance"))
    return CliRunner()


def test_an_unreachable_registry_fails_with_one_plain_explanation(runner: CliRunner) -> None:
    result = runner.invoke(main, ["voice-sdk", "--registry", "http://127.0.0.1:9"])

    assert 1 == result.exit_code
    assert "could not reach the npm registry" in result.output
    assert "softphone is unavailable" in result.output
    assert "Traceback" not in result.output


def test_an_installed_sdk_is_reported_without_a_download(runner: CliRunner,
                                                         tmp_path: Path) -> None:
    script = script_path(tmp_path / "instance")
    script.parent.mkdir(parents=True)
    script.write_text("// installed earlier")

    result = runner.invoke(main, ["voice-sdk", "--registry", "http://127.0.0.1:9"])

    assert 0 == result.exit_code
    assert "is installed" in result.output
