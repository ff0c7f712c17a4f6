"""How the Salesforce sink gets its access token: client credentials, or the JWT bearer flow.

Both post to the org's token endpoint (``/services/oauth2/token`` on
``CAHUB_SALESFORCE_BASE_URL``, the My Domain host) and neither gets a refresh token: a
new token is asked for when the API answers 401.

- **Client credentials**: the app's consumer key and secret (HTTP Basic); the token runs
  as the app's "Run As" user.
- **JWT bearer** (OAuth 2.0 JWT bearer flow, RFC 7523): a JWT signed (RS256) with the
  private key of the certificate uploaded to the connected or external client app, naming
  the app (``iss``, its consumer key), the user it acts for (``sub``) and the login host
  (``aud``: ``https://login.salesforce.com``, or ``https://test.salesforce.com`` for a
  sandbox). No secret travels. Salesforce takes a JWT that expires within minutes, so a
  new one is signed for each token request. The user must be pre-authorised for the app
  (its profile or a permission set), or the endpoint answers ``invalid_grant``.

Source: Salesforce Help, "OAuth 2.0 JWT Bearer Flow for Server-to-Server Integration".
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import jwt
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey
from cryptography.hazmat.primitives.serialization import load_pem_private_key

JWT_BEARER_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"
DEFAULT_AUDIENCE = "https://login.salesforce.com"
JWT_LIFETIME_S = 180  # how long a signed assertion is good for (Salesforce allows minutes)


class TokenGrant(Protocol):
    """What the token request carries: ``requests`` keyword arguments (``data``, ``auth``)."""

    def token_request(self) -> dict[str, Any]: ...


@dataclass(frozen=True)
class ClientCredentials:
    """The client-credentials grant: consumer key and secret, as HTTP Basic."""

    client_id: str
    client_secret: str

    def token_request(self) -> dict[str, Any]:
        return {"auth": (self.client_id, self.client_secret),
                "data": {"grant_type": "client_credentials"}}

    def __repr__(self) -> str:  # the secret stays out of logs and tracebacks
        return f"ClientCredentials(client_id={self.client_id!r})"


class JwtBearer:
    """The JWT bearer grant: an assertion signed with the app certificate's private key."""

    def __init__(self, client_id: str, username: str, private_key_pem: bytes,
                 audience: str = DEFAULT_AUDIENCE) -> None:
        key = load_pem_private_key(private_key_pem, password=None)
        if not isinstance(key, RSAPrivateKey):
            raise ValueError("not an RSA private key (Salesforce signs with RS256)")
        self.client_id, self.username, self.audience = client_id, username, audience
        self._key = key

    @classmethod
    def from_file(cls, client_id: str, username: str, key_file: Path,
                  audience: str = DEFAULT_AUDIENCE) -> JwtBearer:
        """The grant with the PEM key in ``key_file``; ``ValueError`` saying what is wrong."""
        try:
            pem = key_file.read_bytes()
        except OSError as exc:
            raise ValueError(f"cannot read {key_file}: {exc.strerror}") from None
        try:
            return cls(client_id, username, pem, audience)
        except (ValueError, TypeError) as exc:
            # Not the library's text alone: say which file, never what is in it.
            raise ValueError(f"{key_file} holds no usable private key: {exc}") from None

    def assertion(self, now: float | None = None) -> str:
        """A newly signed JWT for the token request."""
        issued = int(time.time() if now is None else now)
        claims = {"iss": self.client_id, "sub": self.username, "aud": self.audience,
                  "exp": issued + JWT_LIFETIME_S}
        return jwt.encode(claims, self._key, algorithm="RS256")

    def token_request(self) -> dict[str, Any]:
        return {"data": {"grant_type": JWT_BEARER_GRANT, "assertion": self.assertion()}}

    def __repr__(self) -> str:
        return f"JwtBearer(client_id={self.client_id!r}, audience={self.audience!r})"
