"""A driver's app version is outside data (the socket's auth frame) read in every dispatch
decision about them: whatever it holds, deciding must not fail."""

import pytest

from dispatch.models import Order
from offers.models import Offer
from tests.factories import ShopChannelFactory, ZoneFactory
from tests.helpers import receive_order

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("app_version", ["2.²", "²", "٣.٠", "2." + "9" * 30, "..", "v", "2.3.0-βeta"])
def test_an_odd_app_version_does_not_break_dispatch(v2_offers_on, v2_driver, app_version):
    # given a v2 driver whose app sent an odd version, and the order offered to the best driver
    ZoneFactory()
    odd = v2_driver(name="Odd")
    type(odd).objects.filter(pk=odd.pk).update(app_version=app_version)
    # when an order arrives
    order = receive_order(ShopChannelFactory())
    # then it was decided: offered (v2) or assigned (v1), not a crash
    order.refresh_from_db()
    assert Offer.objects.filter(order=order).exists() or order.status == Order.Status.ASSIGNED
