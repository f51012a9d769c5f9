import pytest
from django.core.management import CommandError, call_command
from rest_framework.authtoken.models import Token

from audit.models import AuditEvent
from dispatch.models import Driver, ShopChannel
from tests.factories import ZoneFactory

pytestmark = pytest.mark.django_db


def test_create_shop_channel_registers_then_updates(capsys):
    call_command("create_shop_channel", "--token", "tok", "--name", "Shop", "--secret", "s" * 20, "--pickup", "52.5,13.4")
    call_command("create_shop_channel", "--token", "tok", "--name", "Shop renamed", "--secret", "t" * 20, "--pickup", "52.6,13.5")
    channel = ShopChannel.objects.get()
    assert (channel.name, channel.webhook_secret, channel.pickup_lat) == ("Shop renamed", "t" * 20, 52.6)
    assert "Updated shop channel" in capsys.readouterr().out
    assert list(AuditEvent.objects.order_by("id").values_list("kind", flat=True)) == ["shopchannel.created", "shopchannel.updated"]
    assert all(e.after["webhook_secret"] == "***" for e in AuditEvent.objects.all())


@pytest.mark.parametrize(
    "args, message",
    [
        (["--pickup", "52.5"], "LAT,LON"),
        (["--pickup", "north,east"], "LAT,LON"),
        (["--pickup", "95,13"], "latitude"),
        (["--secret", "short"], "16 characters"),
    ],
)
def test_create_shop_channel_refuses_bad_input_and_stores_nothing(args, message):
    base = {"--token": "tok", "--name": "Shop", "--secret": "s" * 20, "--pickup": "52.5,13.4"}
    base.update(dict(zip(args[::2], args[1::2], strict=True)))
    with pytest.raises(CommandError, match=message):
        call_command("create_shop_channel", *[x for pair in base.items() for x in pair])
    assert not ShopChannel.objects.exists()


def test_create_driver_prints_a_working_token(capsys):
    ZoneFactory()
    call_command("create_driver", "--name", "Kofi", "--phone", "+49 151 1", "--zone", "mitte", "--capacity", "3")
    out = capsys.readouterr().out
    token = out.strip().splitlines()[-1].removeprefix("API token: ")
    driver = Driver.objects.get()
    assert (driver.capacity, list(driver.zones.values_list("slug", flat=True))) == (3, ["mitte"])
    assert Token.objects.get(key=token).user == driver.user


@pytest.mark.parametrize(
    "extra, message",
    [(["--zone", "nowhere"], "unknown zone"), (["--zone", "mitte", "--capacity", "0"], "at least 1")],
)
def test_create_driver_refuses_bad_input_and_stores_nothing(extra, message):
    ZoneFactory()
    with pytest.raises(CommandError, match=message):
        call_command("create_driver", "--name", "Kofi", "--phone", "+49 151 1", *extra)
    assert not Driver.objects.exists()


def test_load_demo_twice_duplicates_nothing(settings, tmp_path, capsys, staff_groups):
    settings.VAR_DIR = tmp_path
    call_command("load_demo")
    counts = (Driver.objects.count(), ShopChannel.objects.count())
    first = capsys.readouterr().out
    call_command("load_demo")
    second = capsys.readouterr().out
    assert counts == (20, 1) and (Driver.objects.count(), ShopChannel.objects.count()) == counts
    from dispatch.models import Order, Zone

    assert Zone.objects.count() == 4 and Order.objects.count() == 8
    assert len(set(Order.objects.values_list("status", flat=True))) >= 5
    # the same passwords are printed again, and they work
    ops_lines = [line for line in second.splitlines() if "ops user" in line]
    assert ops_lines == [line for line in first.splitlines() if "ops user" in line]
    password = ops_lines[0].split("ops / ")[1].split()[0]
    from django.contrib.auth import authenticate

    assert authenticate(username="ops", password=password) is not None
