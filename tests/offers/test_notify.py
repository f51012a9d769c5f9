import pytest
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer

from offers.notify import driver_frame_send, driver_frames_batched, driver_group


@pytest.fixture
def listening():
    layer = get_channel_layer()
    channel = async_to_sync(layer.new_channel)()
    groups = [driver_group(i) for i in (901, 902)]
    for group in groups:
        async_to_sync(layer.group_add)(group, channel)
    yield layer, channel
    for group in groups:
        async_to_sync(layer.group_discard)(group, channel)


def test_frames_made_in_a_batch_all_arrive_once_the_batch_ends(listening):
    layer, channel = listening
    with driver_frames_batched():
        for n in range(80):  # more than one flush, fewer than a channel holds (100)
            driver_frame_send(901 + n % 2, {"type": "offer_withdrawn", "offer_id": n, "reason": "expired"})

    async def receive_all():
        return [(await layer.receive(channel))["frame"]["offer_id"] for _ in range(80)]

    assert sorted(async_to_sync(receive_all)()) == list(range(80))


def test_a_frame_outside_a_batch_goes_at_once(listening):
    layer, channel = listening
    driver_frame_send(902, {"type": "offer_withdrawn", "offer_id": 7, "reason": "taken"})
    assert async_to_sync(layer.receive)(channel)["frame"] == {"type": "offer_withdrawn", "offer_id": 7, "reason": "taken"}
