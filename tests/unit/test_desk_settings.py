"""The softphone's settings and the TOML ``[wrapup]`` table (PRODUCT.md §5)."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from hub.desk import DEFAULT_OUTCOMES, WrapUpRules
from hub.settings import Settings, load_hub_config

WRAPUP_TOML = """
[[agents]]
id = "grace"
name = "Grace Hopper"
client = "grace"
token = "t-1"
caller_id = "+18005550100"

[wrapup]
timeout_s = 120
outcomes = [
  { id = "refund", label = "Refund issued" },
  { id = "vm", label = "Left voicemail", hubspot = "b2cf5968-551e-4856-9783-52b3da59a7d0" },
]
"""


def test_the_wrapup_table_gives_the_outcomes_and_the_timeout(tmp_path: Path) -> None:
    path = tmp_path / "hub.toml"
    path.write_text(WRAPUP_TOML)

    config = load_hub_config(path)

    assert ["refund", "vm"] == [o.id for o in config.wrapup.outcomes]
    assert 120 == config.wrapup.timeout_s
    assert "Refund issued" == config.wrapup.outcome("refund").label  # type: ignore[union-attr]
    assert "+18005550100" == config.agents[0].caller_id


def test_without_a_wrapup_table_the_default_outcomes_apply() -> None:
    assert DEFAULT_OUTCOMES == WrapUpRules().outcomes


def test_outcome_ids_must_be_unique() -> None:
    with pytest.raises(ValidationError, match="unique"):
        WrapUpRules(outcomes=({"id": "a", "label": "A"}, {"id": "a", "label": "B"}))


def test_an_empty_outcome_list_is_refused() -> None:
    with pytest.raises(ValidationError, match="at least one outcome"):
        WrapUpRules(outcomes=())


def test_an_unknown_outcome_is_none() -> None:
    assert None is WrapUpRules().outcome("no-such-outcome")


def test_the_softphone_settings_are_read_from_the_environment(monkeypatch) -> None:
    monkeypatch.setenv("CAHUB_TWILIO_API_KEY_SID", "SK" + "a" * 32)
    monkeypatch.setenv("CAHUB_TWILIO_API_KEY_SECRET", "key-secret")
    monkeypatch.setenv("CAHUB_TWILIO_TWIML_APP_SID", "AP" + "b" * 32)
    monkeypatch.setenv("CAHUB_VOICE_EDGES", "ashburn, dublin")

    settings = Settings(_env_file=None)

    assert "SK" + "a" * 32 == settings.twilio_api_key_sid
    assert "key-secret" == settings.twilio_api_key_secret.get_secret_value()  # type: ignore[union-attr]
    assert ["ashburn", "dublin"] == settings.voice_edges


def test_an_api_key_sid_that_is_not_one_is_refused() -> None:
    with pytest.raises(ValidationError, match="twilio_api_key_sid"):
        Settings(_env_file=None, twilio_api_key_sid="AC" + "a" * 32)


def test_an_edge_name_that_could_break_the_content_security_policy_is_refused() -> None:
    with pytest.raises(ValidationError, match="edge names"):
        Settings(_env_file=None, voice_edges=["roaming; script-src *"])
