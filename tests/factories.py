import factory
from django.contrib.auth import get_user_model

from dispatch.models import Driver, ShopChannel, Zone

MITTE_BOX = {"type": "Polygon", "coordinates": [[[13.36, 52.505], [13.42, 52.505], [13.42, 52.535], [13.36, 52.535], [13.36, 52.505]]]}


class ZoneFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Zone
        django_get_or_create = ("slug",)

    name = "Mitte"
    slug = "mitte"
    area = MITTE_BOX
    postal_code_prefixes = ["101"]


class ShopChannelFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ShopChannel
        django_get_or_create = ("token",)

    token = "shop-token"
    name = "Test Shop"
    webhook_secret = "test-webhook-secret-0123456789"
    pickup_lat = 52.5163
    pickup_lon = 13.3777


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()

    username = factory.Sequence(lambda n: f"user{n}")


class DriverFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Driver
        skip_postgeneration_save = True

    user = factory.SubFactory(UserFactory)
    name = factory.Sequence(lambda n: f"Driver {n}")
    phone = factory.Sequence(lambda n: f"+4915100{n:05d}")
    capacity = 1
    availability = Driver.Availability.AVAILABLE

    @factory.post_generation
    def zones(self, create, extracted, **kwargs):
        if create:
            self.zones.set(extracted if extracted is not None else [ZoneFactory()])


def staff_member(group):
    """A staff user in the `ops` or `support` group (the groups must exist: the staff_groups fixture)."""
    from django.contrib.auth.models import Group

    user = UserFactory(is_staff=True)
    user.groups.add(Group.objects.get(name=group))
    return user
