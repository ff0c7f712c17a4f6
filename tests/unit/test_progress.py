"""How a call moves on the agent's desk as its legs report, and what its log carries."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hub.desk import DeskCall, Handoff
from hub.desk_changes import CallStates, Change
from hub.models import LegStatusUpdate
from hub.progress import after_call, leg_moves
from tests.fakes import RecordingBroker
from tests.support import leg_form, make_settings

T0 = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)
SID, LEG = "CA" + "1" * 32, "CA" + "2" * 32


def call(**changes: object) -> DeskCall:
    return DeskCall(**{"call_sid": SID, "agent_id": "grace", "updated_at": T0, **changes})


def leg(status: str, to: str = "client:grace", duration: int | None = None) -> LegStatusUpdate:
    return LegStatusUpdate.model_validate(leg_form(SID, LEG, status, to, duration))


def test_an_answered_leg_connects_the_call_from_that_moment():
    moved = leg_moves(call(), "grace", leg("in-progress"), T0)

    assert ("connected", T0, LEG) == (moved.phase, moved.answered_at, moved.leg_sid)


def test_the_agents_leg_over_ends_their_part_with_its_talk_time():
    moved = leg_moves(call(phase="connected", answered_at=T0), "grace",
                      leg("completed", duration=252), T0 + timedelta(minutes=4))

    assert ("ended", 252) == (moved.phase, moved.talk_s)


def test_an_answered_callback_after_the_end_changes_nothing():
    assert None is leg_moves(call(phase="ended", ended_at=T0), "grace", leg("in-progress"), T0)


def test_a_leg_nobody_answered_misses_the_call_and_keeps_how_it_ended():
    moved = leg_moves(call(), "grace", leg("busy"), T0)

    assert ("missed", "busy") == (moved.phase, moved.leg_status)


def test_the_first_agents_leg_ending_for_a_transfer_changes_nothing():
    transferring = call(phase="transferring", transfer_to="alan", answered_at=T0)

    assert None is leg_moves(transferring, "grace", leg("completed", duration=30), T0)


def test_the_colleague_who_answers_a_transfer_holds_the_call_with_the_notes_before():
    transferring = call(phase="transferring", transfer_to="alan", answered_at=T0,
                        notes="Wants the annual plan.")

    moved = leg_moves(transferring, "alan", leg("in-progress", "client:alan"), T0)

    assert ("alan", "connected", "", None) == (moved.agent_id, moved.phase, moved.notes,
                                              moved.transfer_to)
    assert [("grace", "Wants the annual plan.")] == [(h.agent_id, h.notes)
                                                     for h in moved.handoffs]


def test_a_transfer_nobody_answers_rings_the_first_agent_again():
    transferring = call(phase="transferring", transfer_to="alan", answered_at=T0)

    moved = leg_moves(transferring, "alan", leg("no-answer", "client:alan"), T0)

    assert ("grace", "ringing", None, "alan") == (moved.agent_id, moved.phase,
                                                 moved.transfer_to, moved.transfer_failed)


def test_the_leg_of_an_agent_the_call_has_left_is_ignored():
    assert None is leg_moves(call(agent_id="alan"), "grace", leg("completed"), T0)


def test_the_log_carries_the_outcomes_label_and_the_notes_as_typed():
    settings = make_settings("unused")

    after = after_call(call(outcome="refund_issued", notes="Refunded."), settings)

    assert ("refund_issued", "Refund issued", "Refunded.") == (after.outcome_id, after.outcome,
                                                              after.notes)


def test_after_a_transfer_the_log_names_each_agents_notes():
    settings = make_settings("unused")
    handed = call(agent_id="alan", notes="Done.", handoffs=(
        Handoff(agent_id="grace", agent_name="", notes="Upgrade.", at=T0),))

    assert "Grace Hopper: Upgrade.\n\nAlan Turing: Done." == after_call(handed, settings).notes


def test_the_colleague_a_transfer_rings_sees_the_notes_of_the_agent_handing_it_on():
    states = CallStates(RecordingBroker(), make_settings("unused"))
    transferring = call(phase="transferring", transfer_to="alan", notes="Upgrade.")

    seen = states.view(transferring, "alan")

    assert ("ringing", [("Grace Hopper", "Upgrade.")]) == (
        seen.phase, [(h.agent_name, h.notes) for h in seen.handoffs])


def test_the_agent_who_handed_a_call_on_sees_it_transferred_to_their_colleague():
    states = CallStates(RecordingBroker(), make_settings("unused"))

    seen = states.view(call(agent_id="alan", phase="connected"), "grace")

    assert ("transferred", "Alan Turing") == (seen.phase, seen.transfer_to_name)


def test_a_change_is_announced_to_every_agent_it_concerns():
    broker = RecordingBroker()
    states = CallStates(broker, make_settings("unused"))

    states.announce(Change(call(phase="connected"), call(phase="transferring",
                                                          transfer_to="alan")))

    assert ["alan", "grace"] == sorted(agent for agent, _ in broker.published)
