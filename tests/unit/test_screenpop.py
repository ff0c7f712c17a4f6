"""What only the in-process broker does: its event ids are a counter, returned by publish.

The behaviour every broker shares is specified in tests/adapters/test_broker_contract.py.
"""

from __future__ import annotations

from hub.models import CallerKind, CallInfo, Summary
from state.pops.memory import InProcessScreenPopBroker


def summary(number: int) -> Summary:
    call = CallInfo(sid=f"CA{number:032x}", from_="+14155550134", to="+18005550100",
                    caller_kind=CallerKind.NUMBER)
    return Summary(call=call, identity=None, found=True, name="Ada Lovelace")


def test_publish_returns_the_event_id_the_console_receives():
    broker = InProcessScreenPopBroker()
    stream = broker.subscribe("ada")

    event_id = broker.publish("ada", summary(1))

    assert (event_id, summary(1)) == stream.next(1.0)


def test_event_ids_count_up_across_agents():
    broker = InProcessScreenPopBroker()

    ids = [broker.publish(agent, summary(n)) for n, agent in enumerate(["ada", "bob", "ada"])]

    assert ["1", "2", "3"] == ids
