"""Installing the pinned Voice SDK from an npm registry (a local stand-in), integrity checked."""

from __future__ import annotations

import base64
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from integrations.voice_sdk import (
    INTEGRITY,
    PACKAGE,
    VERSION,
    Pin,
    VoiceSdkError,
    install,
    installed,
    matches,
    subresource_integrity,
)
from tests.standins.npm import NpmRegistryStandIn, tarball
from tests.support import modes, open_to_others

SCRIPT = b"window.Twilio = {Device: function () {}};"
LICENSE = b"Apache License 2.0"
PACKAGE_FILES = {"package/dist/twilio.min.js": SCRIPT, "package/LICENSE.md": LICENSE,
                 "package/dist/twilio.js": b"// not wanted", "package/README.md": b"# not wanted"}


@pytest.fixture
def registry() -> Iterator[NpmRegistryStandIn]:
    with NpmRegistryStandIn() as standin:
        yield standin


def test_the_pin_is_a_sha512_subresource_integrity() -> None:
    algorithm, _, digest = INTEGRITY.partition("-")

    assert "sha512" == algorithm
    assert 64 == len(base64.b64decode(digest))
    assert re.fullmatch(r"2\.\d+\.\d+", VERSION)


def test_install_keeps_the_script_and_its_licence_only(registry, tmp_path: Path) -> None:
    pin = Pin("2.0.0", registry.publish(PACKAGE, "2.0.0", PACKAGE_FILES))

    script = install(tmp_path, registry.base_url, pin)

    assert SCRIPT == script.read_bytes()
    assert ["LICENSE.md", "twilio.min.js"] == sorted(p.name for p in script.parent.iterdir())
    assert script == installed(tmp_path, pin)


def test_the_installed_sdk_is_the_hubs_users_alone_like_the_rest_of_its_data(
        registry, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    pin = Pin("2.0.0", registry.publish(PACKAGE, "2.0.0", PACKAGE_FILES))
    data_dir = tmp_path / "instance"  # made by the install, as on a fresh machine

    install(data_dir, registry.base_url, pin)

    assert {} == open_to_others(data_dir)
    assert {"voice-sdk/2.0.0/twilio.min.js", "voice-sdk/2.0.0/LICENSE.md"} <= set(modes(data_dir))
    assert [] == [r.getMessage() for r in caplog.records if "readable by others" in r.getMessage()]


def test_a_tarball_that_does_not_match_the_pin_is_refused_and_nothing_is_written(
        registry, tmp_path: Path) -> None:
    registry.publish(PACKAGE, "2.0.0", PACKAGE_FILES)
    pin = Pin("2.0.0", subresource_integrity(b"something else", "sha512"))

    with pytest.raises(VoiceSdkError, match="does not match its pinned integrity"):
        install(tmp_path, registry.base_url, pin)

    assert None is installed(tmp_path, pin)
    assert not (tmp_path / "voice-sdk").exists() or not any((tmp_path / "voice-sdk").iterdir())


def test_an_unreachable_registry_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(VoiceSdkError, match="could not reach the npm registry"):
        install(tmp_path, "http://127.0.0.1:9", Pin())


def test_a_version_the_registry_does_not_have_is_a_clear_error(registry, tmp_path) -> None:
    with pytest.raises(VoiceSdkError, match="HTTP 404"):
        install(tmp_path, registry.base_url, Pin("9.9.9"))


def test_an_installed_sdk_is_not_fetched_again(registry, tmp_path: Path) -> None:
    pin = Pin("2.0.0", registry.publish(PACKAGE, "2.0.0", PACKAGE_FILES))
    install(tmp_path, registry.base_url, pin)

    install(tmp_path, registry.base_url, pin)

    assert 1 == registry.counts["tarball"]


def test_only_the_named_members_are_unpacked_whatever_paths_the_tarball_holds(
        registry, tmp_path: Path) -> None:
    hostile = {**PACKAGE_FILES, "../../escaped.js": b"x", "/etc/cahub-escaped": b"x"}
    data = tarball(hostile)
    registry.publish_bytes(PACKAGE, "2.0.0", data)

    install(tmp_path, registry.base_url, Pin("2.0.0", subresource_integrity(data, "sha512")))

    assert not (tmp_path.parent / "escaped.js").exists()
    assert not Path("/etc/cahub-escaped").exists()


def test_a_tarball_without_the_script_is_refused(registry, tmp_path: Path) -> None:
    pin = Pin("2.0.0", registry.publish(PACKAGE, "2.0.0", {"package/LICENSE.md": LICENSE}))

    with pytest.raises(VoiceSdkError, match="lacks"):
        install(tmp_path, registry.base_url, pin)


@pytest.mark.parametrize("integrity", ["md5-abc", "sha1-abc", "", "sha512"])
def test_only_strong_integrities_match(integrity: str) -> None:
    assert not matches(b"data", integrity)
