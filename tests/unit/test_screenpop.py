"""What only the in-process broker does: its event ids are a counter, returned by publish.

The behaviour every broker shares is specified in tests/adapters/test_broker_contract.py.
"""

from __future__ import annotations

from state.pops.memory import InProcessScreenPopBroker
from tests.support import pop_summary as summary


def test_publish_returns_the_event_id_the_console_receives():
    broker = InProcessScreenPopBroker()
    stream = broker.subscribe("ada")

    event_id = broker.publish("ada", summary(1))

    assert (event_id, summary(1)) == stream.next(1.0)


def test_event_ids_count_up_across_agents():
    broker = InProcessScreenPopBroker()

    ids = [broker.publish(agent, summary(n)) for n, agent in enumerate(["ada", "bob", "ada"])]

    assert ["1", "2", "3"] == ids
