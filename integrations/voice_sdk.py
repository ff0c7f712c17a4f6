"""Twilio's Voice JavaScript SDK, installed from the npm registry for the hub to serve itself.

The SDK is third-party code with no CDN since 2.0, so it is not kept in the repository: the
set-up (``cahub voice-sdk``, which ``make demo`` runs) fetches the pinned version's tarball
from the registry, checks it against the integrity pinned here (the ``dist.integrity`` the
registry published for that version: Subresource Integrity syntax, ``sha512-`` and base64),
and keeps only what the console loads (``dist/twilio.min.js``) and its licence, under
``<data dir>/voice-sdk/<version>/``. No Node is needed. A tarball that does not match the
pin is refused whole; nothing is written until it has been checked.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import io
import os
import shutil
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

import requests

from hub.private_files import private_directory

PACKAGE = "@twilio/voice-sdk"
VERSION = "2.18.5"
# From https://registry.npmjs.org/@twilio/voice-sdk, versions["2.18.5"].dist.integrity.
INTEGRITY = ("sha512-2/tw1IDAIn7j6yFDOln8p93v3aHIxNIN93JwL98cHIlbkSNeU/Jt9zGM/0TvDpNjo+k88lvAew4"
             "jgOjKlc9/KA==")
SCRIPT = "twilio.min.js"
MEMBERS = {"package/dist/twilio.min.js": SCRIPT, "package/LICENSE.md": "LICENSE.md"}
MAX_TARBALL_BYTES = 8 * 1024 * 1024  # 2.18.5 is 0.67 MB
TIMEOUT_S = (5.0, 60.0)


class VoiceSdkError(Exception):
    """The SDK could not be installed; the message says why, for the person at the terminal."""


@dataclass(frozen=True)
class Pin:
    """One version of the package and the integrity its tarball must have."""

    version: str = VERSION
    integrity: str = INTEGRITY

    def tarball_url(self, registry: str) -> str:
        name = PACKAGE.split("/")[-1]
        return f"{registry.rstrip('/')}/{PACKAGE}/-/{name}-{self.version}.tgz"


def script_path(data_dir: Path, pin: Pin = Pin()) -> Path:
    """Where the installed script is (or would be)."""
    return Path(data_dir) / "voice-sdk" / pin.version / SCRIPT


def installed(data_dir: Path, pin: Pin = Pin()) -> Path | None:
    """The installed script, or None when the set-up has not installed it."""
    path = script_path(data_dir, pin)
    return path if path.is_file() else None


def subresource_integrity(data: bytes, algorithm: str = "sha384") -> str:
    """``data``'s integrity in SRI syntax, as a ``<script integrity>`` or npm writes it."""
    digest = hashlib.new(algorithm, data).digest()
    return f"{algorithm}-{base64.b64encode(digest).decode()}"


def matches(data: bytes, integrity: str) -> bool:
    """Whether ``data`` has the SRI ``integrity`` (only sha512 and sha384 are accepted)."""
    algorithm, _, _ = integrity.partition("-")
    if algorithm not in ("sha512", "sha384"):
        return False
    return hmac.compare_digest(subresource_integrity(data, algorithm), integrity)


def install(data_dir: Path, registry: str, pin: Pin = Pin(),
            session: requests.Session | None = None) -> Path:
    """Fetch, check and unpack the pinned SDK, unless it is there already; its script's path."""
    present = installed(data_dir, pin)
    if present is not None:
        return present
    tarball = _download(pin.tarball_url(registry), session or requests.Session())
    if not matches(tarball, pin.integrity):
        raise VoiceSdkError(f"{PACKAGE}@{pin.version} from {registry} does not match its pinned "
                            f"integrity ({pin.integrity[:19]}…): refused, nothing installed")
    private_directory(Path(data_dir))  # owner-only, where mkdir would give it the umask's mode
    _unpack(tarball, script_path(data_dir, pin).parent)
    return script_path(data_dir, pin)


def _download(url: str, session: requests.Session) -> bytes:
    try:
        with session.get(url, timeout=TIMEOUT_S, stream=True) as response:
            if response.status_code != 200:
                raise VoiceSdkError(f"the registry answered HTTP {response.status_code} for {url}")
            body = bytearray()
            for chunk in response.iter_content(64 * 1024):
                body += chunk
                if len(body) > MAX_TARBALL_BYTES:
                    raise VoiceSdkError(f"{url} is larger than {MAX_TARBALL_BYTES} bytes")
            return bytes(body)
    except requests.RequestException as exc:
        raise VoiceSdkError(f"could not reach the npm registry ({type(exc).__name__}) "
                            f"for {url}") from exc


def _unpack(tarball: bytes, target: Path) -> None:
    """Write the wanted members into ``target`` all at once: a partial copy never shows."""
    # The data directory is the hub's user's alone, as everything in it (hub.private_files);
    # the hub serves the SDK itself. mkdtemp makes the staging directory 0700.
    private_directory(target.parent)
    staging = Path(tempfile.mkdtemp(prefix=".voice-sdk-", dir=target.parent))
    try:
        with tarfile.open(fileobj=io.BytesIO(tarball), mode="r:gz") as archive:
            for member in archive.getmembers():
                name = MEMBERS.get(member.name)
                source = archive.extractfile(member) if name and member.isfile() else None
                if name and source is not None:
                    (staging / name).write_bytes(source.read())
                    (staging / name).chmod(0o600)
        missing = sorted(set(MEMBERS.values()) - {p.name for p in staging.iterdir()})
        if missing:
            raise VoiceSdkError(f"the {PACKAGE} tarball lacks {missing}")
        shutil.rmtree(target, ignore_errors=True)  # what an interrupted install left
        os.replace(staging, target)
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise VoiceSdkError(f"could not unpack the {PACKAGE} tarball: {exc}") from exc
    finally:
        shutil.rmtree(staging, ignore_errors=True)
