"""Property-based tests of Twilio's two webhooks: any correctly signed form, whatever its
field values (huge, empty, odd characters, numbers past any range, calendar edges), is
answered without a 5xx, and nothing it leads to (the call's record, its deliveries, the
write-back of its end into the profile store) logs a traceback or an error.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app import close_app, create_app, services
from tests.support import ADA_PHONE, AGENT_NUMBER, make_settings, signed_post

EXAMPLES = 200
ADA = {"identityMap": {"Phone": [{"id": ADA_PHONE, "primary": True}]},
       "person": {"name": {"firstName": "Ada", "lastName": "Lovelace"}}}
CHARACTERS = st.characters(blacklist_categories=("Cs",))  # what UTF-8 can carry
ODD = st.sampled_from([
    "", " ", "\x00", "\r\n", "anonymous", "+266696687", "client:Anonymous", "sip:a@b",
    "+14155550134", "(415) 555-0134", "+1" + "9" * 40, "١٢٣٤٥٦٧٨٩٠", "Zoë 🙂", "<Response/>",
    "%2B14155550134", "-1", "0", "9" * 25, "1e309", "NaN", "completed", "ringing",
    "Mon, 31 Dec 9999 23:59:59 -1400", "Mon, 01 Jan 0001 00:00:00 +1400",
    "Thu, 01 Jan 1970 00:00:00 +0000", "Mon, 01 Jan 2026 00:00:00 +9999",
])
HUGE = st.builds(lambda char, size: char * size, CHARACTERS, st.integers(1, 100_000))
VALUE = st.one_of(ODD, st.text(CHARACTERS, max_size=40), HUGE,
                  st.integers(-(10**30), 10**30).map(str))
SID = st.one_of(st.sampled_from(["CA" + "a" * 32, "CA" + "F" * 32]),
                st.text("0123456789abcdef", min_size=32, max_size=32).map(lambda h: "CA" + h),
                VALUE)
NEW_SID = st.just("a new call")  # one of its own, so that it can end (see the test)
EXTRA = st.dictionaries(st.text(CHARACTERS, min_size=1, max_size=12), VALUE, max_size=4)
# Plausible values half the time, so that deeper paths (a call that ends and is written
# back with its timestamp) are reached as often as the form's validation is.
STATUS = st.one_of(st.just("completed"), st.sampled_from(
    ["busy", "failed", "no-answer", "canceled", "ringing", "in-progress"]), VALUE)
COUNT = st.one_of(st.integers(0, 2**31 - 1).map(str), VALUE)
RFC2822 = st.builds(
    lambda day, year, hour, offset: f"Mon, {day:02d} Dec {year:04d} {hour:02d}:59:59 {offset}",
    st.integers(1, 31), st.integers(1, 9999), st.integers(0, 23),
    st.sampled_from(["+0000", "-1400", "+1400", "-0000", "+9999", "GMT", ""]))
EDGES = st.sampled_from([  # the calendar's edges, where date arithmetic overflows
    "Fri, 31 Dec 9999 23:59:59 -1400", "Mon, 01 Jan 0001 00:00:00 +1400",
    "Fri, 31 Dec 9999 23:59:59 +0000", "Sat, 01 Jan 0000 00:00:00 +0000",
    "Thu, 01 Jan 1970 00:00:00 +0000", "Tue, 19 Jan 2038 03:14:08 +0000"])
TIMESTAMP = st.one_of(EDGES, RFC2822, VALUE)


class Errors(logging.Handler):
    """Keeps every record at ERROR or above, or carrying a traceback."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.levelno >= logging.ERROR or record.exc_info or "Traceback" in record.getMessage():
            self.records.append(record)


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Flask]:
    data_dir = tmp_path_factory.mktemp("fuzz") / "instance"
    app = create_app(make_settings(data_dir, lookup_deadline_ms=500), start_background=False)
    services(app).store.ingest("profiles", [json.dumps(ADA)])
    yield app
    close_app(app)


@pytest.fixture(scope="module")
def errors() -> Iterator[Errors]:
    handler = Errors()
    logging.getLogger().addHandler(handler)
    yield handler
    logging.getLogger().removeHandler(handler)


def answered(hub: Flask, errors: Errors, path: str, form: dict[str, str]) -> None:
    """POST the signed form; then make every delivery it queued; nothing may break."""
    errors.records.clear()
    client: FlaskClient = hub.test_client()
    reply = signed_post(client, path, form)
    services(hub).dispatcher.drain_once(limit=1000)
    assert reply.status_code < 500, reply.get_data(as_text=True)[:200]
    assert [] == [f"{r.levelname} {r.name}: {r.getMessage()[:300]}" for r in errors.records]


FUZZ = settings(max_examples=EXAMPLES, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture,
                                       HealthCheck.too_slow, HealthCheck.data_too_large])


@FUZZ
@given(sid=SID, from_=VALUE, to=st.one_of(st.just(AGENT_NUMBER), VALUE), extra=EXTRA)
def test_any_signed_voice_form_is_answered_without_a_server_error(
    hub: Flask, errors: Errors, sid: str, from_: str, to: str, extra: dict[str, str],
) -> None:
    form = {**extra, "CallSid": sid, "From": from_, "To": to, "AccountSid": "AC" + "1" * 32}
    answered(hub, errors, "/twilio/voice", form)


@FUZZ
@given(sid=st.one_of(NEW_SID, SID), status=STATUS, sequence=COUNT, duration=COUNT,
       timestamp=TIMESTAMP, extra=EXTRA,
       number=st.sampled_from([ADA_PHONE, "+12025550111", "anonymous"]))
def test_any_signed_status_form_is_answered_without_a_server_error(
    hub: Flask, errors: Errors, sid: str, status: str, sequence: str, duration: str,
    timestamp: str, extra: dict[str, str], number: str,
) -> None:
    sid = "CA" + uuid.uuid4().hex if sid == "a new call" else sid  # fresh when replayed too
    voice = {"CallSid": sid, "From": number, "To": AGENT_NUMBER, "AccountSid": "AC" + "1" * 32}
    signed_post(hub.test_client(), "/twilio/voice", voice)
    form = {**extra, "CallSid": sid, "CallStatus": status, "SequenceNumber": sequence,
            "CallDuration": duration, "Timestamp": timestamp}
    answered(hub, errors, "/twilio/status", form)


def test_the_fuzzers_catch_a_server_error(hub: Flask, errors: Errors,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """The property can fail: a handler that breaks is caught by it."""
    def broken(*_: object) -> None:
        raise RuntimeError("broken on purpose")

    monkeypatch.setattr(services(hub).calls, "status", broken)
    with pytest.raises(AssertionError):
        answered(hub, errors, "/twilio/status", {"CallSid": "CA" + "b" * 32,
                                                 "CallStatus": "completed"})


def test_data_directory_is_the_fuzzers_own(hub: Flask) -> None:
    assert Path(services(hub).settings.data_dir).name == "instance"
