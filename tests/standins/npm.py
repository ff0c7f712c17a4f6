"""A stand-in for the npm registry's tarball downloads (``GET /<scope>/<name>/-/<file>.tgz``).

``publish(name, version, files)`` makes a gzipped tarball of ``{path: bytes}`` (npm puts a
package's files under ``package/``) and answers it at the registry's path; its SRI
integrity, as the registry's metadata would give it, is returned. Request kind: ``tarball``.
"""

from __future__ import annotations

import io
import tarfile

from flask import Response, abort

from integrations.voice_sdk import subresource_integrity
from tests.standins import StandIn


def tarball(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for path, data in files.items():
            info = tarfile.TarInfo(path)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


class NpmRegistryStandIn(StandIn):
    """Serves the tarballs it was given."""

    def __init__(self) -> None:
        super().__init__()
        self.tarballs: dict[str, bytes] = {}
        self.app.add_url_rule("/<path:package>/-/<filename>", "tarball", self._tarball)

    def publish(self, name: str, version: str, files: dict[str, bytes]) -> str:
        data = tarball(files)
        self.publish_bytes(name, version, data)
        return subresource_integrity(data, "sha512")

    def publish_bytes(self, name: str, version: str, data: bytes) -> None:
        self.tarballs[f"{name}/-/{name.split('/')[-1]}-{version}.tgz"] = data

    def _tarball(self, package: str, filename: str) -> Response:
        data = self.tarballs.get(f"{package}/-/{filename}")
        if data is None:
            abort(404)
        return Response(data, mimetype="application/octet-stream")
