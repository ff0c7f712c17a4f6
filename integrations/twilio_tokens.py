"""Access tokens for the agents' softphones (Twilio's Voice JavaScript SDK).

A token is a JWT signed (HS256) with a Standard API key's secret, never the auth token
(Twilio refuses that, error 20107). Its Voice grant lets the agent's client identity take
incoming calls and place outgoing ones through the TwiML App. Tokens are short-lived: the
console asks for a new one before the old one expires.
"""

from __future__ import annotations

from dataclasses import dataclass

from twilio.jwt.access_token import AccessToken
from twilio.jwt.access_token.grants import VoiceGrant


@dataclass(frozen=True)
class VoiceToken:
    """A signed token, the identity it is for, and how many seconds it lasts."""

    token: str
    identity: str
    ttl: int


class VoiceTokenMinter:
    """Mints tokens for one account, API key and TwiML App."""

    def __init__(self, account_sid: str, key_sid: str, key_secret: str, app_sid: str,
                 ttl_s: int) -> None:
        self._account_sid = account_sid
        self._key_sid = key_sid
        self._key_secret = key_secret
        self._app_sid = app_sid
        self._ttl_s = ttl_s

    def mint(self, identity: str) -> VoiceToken:
        """A token for the client ``identity``: calls to it ring, and it may dial out."""
        token = AccessToken(self._account_sid, self._key_sid, self._key_secret,
                            identity=identity, ttl=self._ttl_s)
        # incoming_allow must be the value True: the library writes the grant only then.
        token.add_grant(VoiceGrant(outgoing_application_sid=self._app_sid, incoming_allow=True))
        return VoiceToken(token=str(token.to_jwt()), identity=identity, ttl=self._ttl_s)
