"""Which deliveries a call makes, and that each carries only what its channel allows."""

from __future__ import annotations

from hub.deliveries import DeliveryPlanner
from hub.models import (
    CallerKind,
    CallInfo,
    CallStatusUpdate,
    DeliveryAction,
    Identity,
    Summary,
)
from hub.policy import ChannelPolicy, DataUsage
from hub.settings import Agent
from integrations.sms import fit_sms, segments

SID = "CA" + "9" * 32
REP = Agent(id="grace", name="Grace", client="grace", sms="+14155550199", token="t")
ADA = Summary(
    call=CallInfo(sid=SID, **{"from": "+14155550134"}, to="+18005550100",
                  caller_kind=CallerKind.NUMBER),
    identity=Identity(namespace="Phone", id="+14155550134"), found=True, profile_id="p1",
    name="Ada Lovelace", email="ada@example.com", loyalty_tier="gold", lifetime_value=1234.5,
    churn_propensity=0.82,
)
ENDED = CallStatusUpdate(CallSid=SID, CallStatus="completed", SequenceNumber=3, CallDuration=240)


def planner(crm: str = "hubspot", sms_from: str | None = "+18005550111") -> DeliveryPlanner:
    return DeliveryPlanner(crm, sms_from, DataUsage(), fit_sms)


def test_an_answered_call_gets_a_crm_note_and_an_sms_to_the_rep() -> None:
    rows = planner().on_answer(ADA, REP)
    assert [("hubspot", DeliveryAction.NOTE), ("sms", DeliveryAction.SMS)] == [
        (row.sink, row.action) for row in rows]


def test_the_sms_carries_the_name_and_facts_but_no_contact_identifiers() -> None:
    sms = planner().on_answer(ADA, REP)[1].payload
    assert ("+14155550199", "+18005550111") == (sms["to"], sms["from"])
    assert "Ada Lovelace" in sms["body"]
    assert "gold" in sms["body"]
    for secret in ("ada@example.com", "+14155550134", "p1"):
        assert secret not in sms["body"]
    assert len(sms["body"]) <= 160


def test_the_note_carries_the_summary_and_the_number_to_find_the_record() -> None:
    note = planner().on_answer(ADA, REP)[0].payload
    assert ("+14155550134", "Ada Lovelace", "ada@example.com") == (
        note["phone"], note["summary"]["name"], note["summary"]["email"])


def test_no_crm_and_no_sms_sender_means_no_deliveries_on_answer() -> None:
    assert [] == planner(crm="none", sms_from=None).on_answer(ADA, REP)


def test_an_unknown_caller_gets_a_note_but_no_sms() -> None:
    unknown = Summary(call=ADA.call, identity=None, found=False)
    assert [DeliveryAction.NOTE] == [r.action for r in planner().on_answer(unknown, REP)]


def test_a_withheld_caller_gets_no_deliveries() -> None:
    withheld = Summary(call=ADA.call.model_copy(update={"caller_kind": CallerKind.WITHHELD}),
                       identity=None, found=False)
    assert [] == planner().on_answer(withheld, REP)


def test_an_ended_call_is_logged_to_the_crm_and_written_back_to_the_profile() -> None:
    rows = planner().on_end(ADA, ENDED)
    assert [("hubspot", 240, "completed"), ("profile", 240, "completed")] == [
        (r.sink, r.payload["duration_s"], r.payload["outcome"]) for r in rows]


def test_deliveries_are_keyed_by_call_sink_and_action() -> None:
    keys = [row.key for row in planner().on_answer(ADA, REP) + planner().on_end(ADA, ENDED)]
    assert [f"{SID}:hubspot:note", f"{SID}:sms:sms", f"{SID}:hubspot:call_log",
            f"{SID}:profile:call_log"] == keys


def test_a_generic_webhook_is_filtered_by_the_webhook_channels_policy() -> None:
    usage = DataUsage(policies={"webhook": ChannelPolicy(deny=("I1",))})
    hook = DeliveryPlanner("webhook", None, usage, fit_sms).on_answer(ADA, REP)[0]
    crm = DeliveryPlanner("hubspot", None, usage, fit_sms).on_answer(ADA, REP)[0]
    assert (None, "ada@example.com") == (hook.payload["summary"]["email"],
                                         crm.payload["summary"]["email"])


def test_the_sms_ends_with_the_calls_reference() -> None:
    body = planner().on_answer(ADA, REP)[1].payload["body"]
    assert "Ref 999999" == body.splitlines()[-1]


def test_the_reference_is_kept_within_one_segment_however_much_there_is_to_say() -> None:
    wordy = ADA.model_copy(update={"last_campaign": "Winter Sale 2026 " * 20})
    body = planner().on_answer(wordy, REP)[1].payload["body"]
    assert (True, 1) == (body.endswith("\nRef 999999"), segments(body))
