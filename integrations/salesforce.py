"""Salesforce sink: call notes and call logs as Task records on the caller's Contact or Lead.

Auth is OAuth 2.0 against the org's My Domain (``CAHUB_SALESFORCE_BASE_URL``): the JWT
bearer flow when a user and a private key are set, else client credentials
(``salesforce_auth``); the token is kept until a 401. The caller is found with
SOSL over phone fields, searching the number's digit variants (digits only, so nothing
needs SOSL escaping); a Contact wins over a Lead.

Idempotency: Salesforce takes no idempotency key. With an External ID field on Task
(``CAHUB_SALESFORCE_TASK_KEY_FIELD``, marked Unique) the delivery key goes into it and
Salesforce itself rejects a second create (``DUPLICATE_VALUE``, taken as done). Without
it the sink asks SOQL, which is read-your-writes, for this call's Task (``CallObject`` =
CallSid, same Subject, and a ``CallDisposition`` only for call logs) before creating.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any, Protocol

import requests
from pydantic import SecretStr

from hub.models import Delivery, DeliveryAction
from hub.ports import HubError, TransientError
from integrations.crm_http import (
    DEFAULT_TIMEOUT_S,
    ApiClient,
    SinkSettings,
    check_on_missing,
    decode_json,
    field,
    required,
    vendor_code,
)
from integrations.crm_records import (
    Activity,
    PhoneKeys,
    RecordCache,
    activity_of,
    activity_time,
    phone_keys,
    split_name,
)
from integrations.salesforce_auth import ClientCredentials, JwtBearer, TokenGrant

SERVICE = "salesforce"
DEFAULT_API_VERSION = "v62.0"
# The org's rolling 24-hour API allowance is spent; retrying within seconds cannot help.
REQUEST_LIMIT_BACKOFF_S = 300.0
_SOQL_ESCAPES = str.maketrans({"\\": "\\\\", "'": "\\'", '"': '\\"', "\n": "\\n",
                               "\r": "\\r", "\t": "\\t", "\b": "\\b", "\f": "\\f"})


class SalesforceSettings(SinkSettings, Protocol):
    @property
    def salesforce_base_url(self) -> str | None: ...
    @property
    def salesforce_client_id(self) -> str | None: ...
    @property
    def salesforce_client_secret(self) -> SecretStr | None: ...
    @property
    def salesforce_username(self) -> str | None: ...
    @property
    def salesforce_private_key_file(self) -> Path | None: ...
    @property
    def salesforce_audience(self) -> str: ...
    @property
    def salesforce_api_version(self) -> str: ...
    @property
    def salesforce_task_key_field(self) -> str | None: ...


def soql_quote(value: str) -> str:
    """``value`` as a SOQL string literal."""
    return "'" + value.translate(_SOQL_ESCAPES) + "'"


def _request_limit(response: requests.Response) -> HubError | None:
    if response.status_code == 403 and vendor_code(response) == "REQUEST_LIMIT_EXCEEDED":
        return TransientError("salesforce: HTTP 403 REQUEST_LIMIT_EXCEEDED",
                              retry_after=REQUEST_LIMIT_BACKOFF_S)
    return None


class SalesforceTaskSink:
    """Writes NOTE and CALL_LOG deliveries as completed call Tasks."""

    name = SERVICE

    def __init__(self, base_url: str, grant: TokenGrant, *,
                 api_version: str = DEFAULT_API_VERSION, task_key_field: str | None = None,
                 on_missing: str = "create", session: requests.Session | None = None,
                 timeout_s: float = DEFAULT_TIMEOUT_S) -> None:
        self._http = ApiClient(SERVICE, base_url.rstrip("/"), session=session, timeout_s=timeout_s,
                               classify=_request_limit)
        self._grant = grant
        self._data = f"/services/data/{api_version}"
        self._key_field = task_key_field
        self._on_missing = check_on_missing(on_missing)
        self._records = RecordCache()
        self._token: str | None = None
        self._token_lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings: SalesforceSettings,
                      session: requests.Session | None = None) -> SalesforceTaskSink:
        return cls(
            required(settings.salesforce_base_url, "CAHUB_SALESFORCE_BASE_URL"),
            grant_of(settings),
            api_version=settings.salesforce_api_version,
            task_key_field=settings.salesforce_task_key_field,
            on_missing=settings.crm_on_missing, session=session,
            timeout_s=settings.sink_timeout_s)

    def deliver(self, delivery: Delivery) -> None:
        activity = activity_of(delivery)
        if activity.phone is None or self._task_exists(delivery, activity):
            return
        who = self._find_or_create_who(phone_keys(activity.phone), activity)
        if who is None:
            return
        self._create_task(delivery, activity, who)

    def ping(self) -> None:
        self._api("GET", "/limits")

    def close(self) -> None:
        self._http.close()

    def _task_exists(self, delivery: Delivery, activity: Activity) -> bool:
        if self._key_field:
            return False  # the unique External ID field makes Salesforce refuse a duplicate
        disposition = "= null" if delivery.action is DeliveryAction.NOTE else "!= null"
        sid, subject = soql_quote(delivery.call_sid), soql_quote(_subject(activity))
        # The values are literals made by soql_quote.
        soql = f"SELECT Id FROM Task WHERE CallObject = {sid} AND Subject = {subject}"  # noqa: S608
        soql += f" AND CallDisposition {disposition} LIMIT 1"
        return bool(self._query(soql))

    def _find_or_create_who(self, keys: PhoneKeys, activity: Activity) -> str | None:
        who = self._records.get(keys.e164) or self._search(keys)
        if who is None and self._on_missing == "create":
            who = self._own_lead(keys) or self._create_lead(keys, activity)
        if who is not None:
            self._records.put(keys.e164, who)
        return who

    def _search(self, keys: PhoneKeys) -> str | None:
        terms = " OR ".join(keys.variants)
        sosl = (f"FIND {{{terms}}} IN PHONE FIELDS RETURNING Contact(Id),"
                " Lead(Id WHERE IsConverted = false) LIMIT 10")
        body = self._json("GET", "/search/", params={"q": sosl})
        records = body.get("searchRecords", []) if isinstance(body, dict) else body or []
        by_type = {_type(record): record for record in reversed(records)}
        best = by_type.get("Contact") or by_type.get("Lead")
        return None if best is None else str(field(SERVICE, best, "Id"))

    def _own_lead(self, keys: PhoneKeys) -> str | None:
        """A Lead this hub created earlier: SOQL sees it before the SOSL index does."""
        phone = soql_quote(keys.e164)  # a literal made by soql_quote, as below
        rows = self._query(f"SELECT Id FROM Lead WHERE Phone = {phone}"  # noqa: S608
                           " AND IsConverted = false ORDER BY CreatedDate DESC LIMIT 1")
        return str(field(SERVICE, rows, 0, "Id")) if rows else None

    def _create_lead(self, keys: PhoneKeys, activity: Activity) -> str:
        first, last = split_name(activity.caller_name)
        lead = {"LastName": last[:80], "Company": "Unknown", "Phone": keys.e164}
        if first:
            lead["FirstName"] = first[:40]
        return str(field(SERVICE, self._json("POST", "/sobjects/Lead", json=lead), "id"))

    def _create_task(self, delivery: Delivery, activity: Activity, who: str) -> None:
        task = _task(delivery, activity, who)
        if self._key_field:
            task[self._key_field] = delivery.key
        response = self._api("POST", "/sobjects/Task", json=task, passthrough=(400,))
        if response.status_code == 400 and vendor_code(response) != "DUPLICATE_VALUE":
            raise self._http.error(response)

    def _query(self, soql: str) -> list[Any]:
        records = field(SERVICE, self._json("GET", "/query", params={"q": soql}), "records")
        return records if isinstance(records, list) else []

    def _json(self, method: str, path: str, **kwargs: Any) -> Any:
        return decode_json(SERVICE, self._api(method, path, **kwargs))

    def _api(self, method: str, path: str, *, passthrough: tuple[int, ...] = (),
             **kwargs: Any) -> requests.Response:
        """Call the REST API; a 401 means the token expired: fetch one more and try again."""
        for _ in range(2):
            token = self._access_token()
            response = self._http.send(method, self._data + path, passthrough=(401, *passthrough),
                                       headers={"Authorization": f"Bearer {token}"}, **kwargs)
            if response.status_code != 401:
                return response
            self._forget(token)
        raise self._http.error(response)

    def _access_token(self) -> str:
        with self._token_lock:
            if self._token is None:
                body = self._http.json("POST", "/services/oauth2/token",
                                       **self._grant.token_request())
                self._token = str(field(SERVICE, body, "access_token"))
            return self._token

    def _forget(self, token: str) -> None:
        with self._token_lock:
            if self._token == token:
                self._token = None


def grant_of(settings: SalesforceSettings) -> TokenGrant:
    """The JWT bearer grant when a user or a key file is set (both are needed then), else
    client credentials."""
    client_id = required(settings.salesforce_client_id, "CAHUB_SALESFORCE_CLIENT_ID")
    key_file, username = settings.salesforce_private_key_file, settings.salesforce_username
    if key_file is None and username is None:
        secret = settings.salesforce_client_secret
        return ClientCredentials(client_id, required(
            secret.get_secret_value() if secret else None, "CAHUB_SALESFORCE_CLIENT_SECRET"))
    username = required(username, "CAHUB_SALESFORCE_USERNAME (the JWT bearer flow's user)")
    if key_file is None:
        raise ValueError("CAHUB_SALESFORCE_PRIVATE_KEY_FILE is not set (the JWT bearer flow's key)")
    try:
        return JwtBearer.from_file(client_id, username, key_file, settings.salesforce_audience)
    except ValueError as exc:
        raise ValueError(f"CAHUB_SALESFORCE_PRIVATE_KEY_FILE: {exc}") from None


def _type(record: Any) -> str | None:
    attributes = record.get("attributes") if isinstance(record, dict) else None
    return attributes.get("type") if isinstance(attributes, dict) else None


def _subject(activity: Activity) -> str:
    return activity.subject[:255]


def _task(delivery: Delivery, activity: Activity, who: str) -> dict[str, Any]:
    """The Task for a call note or a call log (Salesforce's call-center fields)."""
    log = delivery.action is DeliveryAction.CALL_LOG
    task: dict[str, Any] = {
        "Subject": _subject(activity),
        "Description": (activity.log_text if log else activity.text)[:32000],
        "Status": "Completed", "TaskSubtype": "Call", "WhoId": who,
        "CallType": activity.direction.title(), "CallObject": delivery.call_sid,
        "ActivityDate": activity_time(activity, delivery).date().isoformat(),
    }
    if log:
        task["CallDurationInSeconds"] = activity.duration_s
        # The agent's outcome code ("Refund issued"), else Twilio's status of the call.
        task["CallDisposition"] = (activity.outcome or "completed")[:255]
    return task
