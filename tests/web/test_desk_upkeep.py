"""Keeping the agent's desk: how long its calls are kept, what /healthz and /metrics say of it,
and what Twilio is answered while it cannot be reached. Each test on SQLite, then on
PostgreSQL."""

# The desk's fixtures (app, twilio, grace, settings) are imported from its tests, and pytest
# hands them to the tests by their names, which ruff takes for redefinitions.
# ruff: noqa: F811

from __future__ import annotations

import psycopg
import pytest
from flask import Flask
from flask.testing import FlaskClient
from psycopg.conninfo import conninfo_to_dict

from app import close_app, services
from tests.backends import POSTGRES_URL
from tests.support import call_form, console_login, leg_form, signed_post, status_form
from tests.web.test_desk import (
    LEG,
    SID,
    answered_call,
    app,  # noqa: F401
    desk_app,
    desk_call,
    desk_settings,
    grace,  # noqa: F401
    post_wrapup,
    put_notes,
    settings,  # noqa: F401
    twilio,  # noqa: F401
)

OTHER = "CA" + "c" * 32


def execute(app: Flask, sqlite: str, postgres: str) -> None:
    """Run a statement on the hub's database, written for the backend the app has."""
    statement = postgres if services(app).settings.database_url else sqlite
    with services(app).hub_db.transaction() as conn:
        conn.execute(statement)


def age_the_desk(app: Flask, hours: int) -> None:
    """Make every call on the desk look as if it last changed ``hours`` ago."""
    seconds, interval = int(hours) * 3600, f"interval '{int(hours)} hours'"
    execute(app, f"UPDATE desk_calls SET updated_at = updated_at - {seconds}",  # noqa: S608 -- ints
            f"UPDATE desk_calls SET updated_at = updated_at - {interval}")  # noqa: S608 -- ints


def desk_away(app: Flask) -> None:
    execute(app, "ALTER TABLE desk_calls RENAME TO desk_calls_away",
            "ALTER TABLE desk_calls RENAME TO desk_calls_away")


def desk_back(app: Flask) -> None:
    execute(app, "ALTER TABLE desk_calls_away RENAME TO desk_calls",
            "ALTER TABLE desk_calls_away RENAME TO desk_calls")


def drop_database(url: str) -> None:
    with psycopg.connect(POSTGRES_URL, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE "{conninfo_to_dict(url)["dbname"]}" WITH (FORCE)')


def purge_now(app: Flask) -> None:
    """Start and stop the delivery worker: the purges run once as it starts."""
    services(app).dispatcher.start()
    services(app).dispatcher.stop()


def wrapped_and_open_calls(twilio: FlaskClient, grace: FlaskClient) -> None:
    """``SID``: answered, over and wrapped up; ``OTHER``: still ringing."""
    answered_call(twilio)
    signed_post(twilio, "/twilio/status", status_form(SID))
    post_wrapup(grace, "resolved", "Done.")
    signed_post(twilio, "/twilio/voice", call_form(OTHER))
    signed_post(twilio, "/twilio/leg-status", leg_form(OTHER, "CA" + "b" * 32, "ringing"))


# --- retention -------------------------------------------------------------------------------


def test_a_call_finished_with_longer_ago_than_the_retention_is_deleted(app, twilio, grace):
    wrapped_and_open_calls(twilio, grace)
    age_the_desk(app, 25)

    purge_now(app)

    assert (None, "ringing") == (services(app).desk.store.get(SID),
                                 services(app).desk.store.get(OTHER).phase)


def test_a_call_finished_with_within_the_retention_is_kept(app, twilio, grace):
    wrapped_and_open_calls(twilio, grace)
    age_the_desk(app, 23)

    purge_now(app)

    assert "wrapped_up" == desk_call(app).phase


def test_a_call_left_open_for_days_is_deleted(app, twilio, grace):
    wrapped_and_open_calls(twilio, grace)
    age_the_desk(app, 24 * 3 + 1)

    purge_now(app)

    assert (None, None) == (services(app).desk.store.get(SID),
                            services(app).desk.store.get(OTHER))


def test_with_a_retention_of_0_the_desk_keeps_every_call(settings, twilio):
    kept = desk_app(settings.model_copy(update={"desk_retention_h": 0.0}))
    try:
        signed_post(kept.test_client(), "/twilio/voice", call_form(SID))
        signed_post(kept.test_client(), "/twilio/leg-status", leg_form(SID, LEG, "no-answer"))
        signed_post(kept.test_client(), "/twilio/status", status_form(SID))
        age_the_desk(kept, 24 * 365)

        purge_now(kept)

        assert "missed" == desk_call(kept).phase
    finally:
        close_app(kept)


# --- health and metrics ----------------------------------------------------------------------


def test_healthz_reports_the_desk(twilio):
    reply = twilio.get("/healthz")

    assert (200, "ok", True) == (reply.status_code, reply.get_json()["status"],
                                 reply.get_json()["desk"]["ok"])


def test_healthz_fails_when_the_desk_cannot_be_read(app, twilio):
    desk_away(app)

    reply = twilio.get("/healthz")

    assert (503, "failing", False) == (reply.status_code, reply.get_json()["status"],
                                       reply.get_json()["desk"]["ok"])
    assert "desk_calls" in reply.get_json()["desk"]["error"]


def metric(twilio: FlaskClient, line: str) -> float | None:
    """The value of the sample ``line`` names in /metrics, or None when there is none."""
    for row in twilio.get("/metrics").get_data(as_text=True).splitlines():
        if row.startswith(line + " "):
            return float(row.split(" ")[-1])
    return None


def test_metrics_count_wrapups_by_the_agent_and_time_their_after_call_work(twilio, grace):
    answered_call(twilio)
    signed_post(twilio, "/twilio/status", status_form(SID))

    post_wrapup(grace, "resolved")

    assert (1.0, None, 1.0) == (metric(twilio, 'cahub_wrapups_total{by="agent"}'),
                                metric(twilio, 'cahub_wrapups_total{by="deadline"}'),
                                metric(twilio, "cahub_after_call_seconds_count"))


def test_metrics_count_wrapups_the_deadline_made(app, twilio):
    answered_call(twilio)
    signed_post(twilio, "/twilio/status", status_form(SID))

    services(app).desk.work.expire(SID)

    assert (1.0, 0.0) == (metric(twilio, 'cahub_wrapups_total{by="deadline"}'),
                          metric(twilio, "cahub_after_call_seconds_count"))


# --- a desk that cannot be reached ------------------------------------------------------------


def test_a_leg_status_the_desk_cannot_take_is_answered_503_and_its_retry_moves_the_card(
        tmp_path):
    # SQLite: a table gone is what its adapter sees of a desk it cannot reach (an
    # OperationalError); on PostgreSQL the whole database goes (the next test).
    app = desk_app(desk_settings(tmp_path))
    twilio = app.test_client()
    try:
        signed_post(twilio, "/twilio/voice", call_form(SID))
        desk_away(app)

        refused = signed_post(twilio, "/twilio/leg-status", leg_form(SID, LEG, "in-progress"))
        desk_back(app)
        retried = signed_post(twilio, "/twilio/leg-status", leg_form(SID, LEG, "in-progress"))

        assert (503, 200) == (refused.status_code, retried.status_code)
        assert "connected" == desk_call(app).phase
    finally:
        close_app(app)


@pytest.mark.slow  # the pool waits out its checkout timeout (5 s) before it gives up
def test_a_leg_status_while_the_database_is_gone_is_answered_503(tmp_path, postgres_url):
    app = desk_app(desk_settings(tmp_path, database_url=postgres_url))
    twilio = app.test_client()
    try:
        signed_post(twilio, "/twilio/voice", call_form(SID))
        drop_database(postgres_url)

        refused = signed_post(twilio, "/twilio/leg-status", leg_form(SID, LEG, "in-progress"))

        assert 503 == refused.status_code
    finally:
        close_app(app)


def test_notes_the_desk_cannot_take_are_answered_503_for_the_console_to_try_again(
        tmp_path):
    app = desk_app(desk_settings(tmp_path))
    twilio, grace = app.test_client(), app.test_client()
    console_login(grace, "grace-token")
    try:
        answered_call(twilio)
        desk_away(app)

        response = put_notes(grace, "Typed while the database was away")

        assert (503, "desk_unavailable") == (response.status_code,
                                             response.get_json()["error"]["code"])
    finally:
        close_app(app)


# --- notes ---------------------------------------------------------------------------------


def test_notes_are_kept_without_the_nul_characters_a_paste_may_carry(app, twilio, grace):
    answered_call(twilio)

    saved = put_notes(grace, "Order\x00 1042")
    wrapped = post_wrapup(grace, "resolved", "Refunded\x00.")

    assert (200, 200) == (saved.status_code, wrapped.status_code)
    assert "Refunded." == desk_call(app).notes

