"""``cahub demo``'s banner: a console login whose token never reaches the server's logs."""

from __future__ import annotations

from pathlib import Path

from cli.demo import _banner, demo_settings
from hub.settings import Settings


def test_the_demo_banner_carries_the_token_in_the_url_fragment(tmp_path: Path) -> None:
    settings = demo_settings(Settings(_env_file=None, data_dir=tmp_path))
    token = settings.hub.agents[0].token.get_secret_value()

    banner = _banner(settings, "127.0.0.1", 5000)

    assert f"http://127.0.0.1:5000/console#token={token}" in banner
    assert "?token=" not in banner
