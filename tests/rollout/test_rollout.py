import pytest
from django.contrib.auth.models import Group
from django.utils import timezone
from hypothesis import given
from hypothesis import strategies as st
from waffle.models import Switch

from audit.actors import Actor
from audit.models import AuditEvent
from dispatch.errors import InvalidInput
from rollout.models import Feature, RolloutPolicy
from rollout.selectors import app_version_tuple, feature_enabled_for, rollout_bucket
from rollout.services import rollout_set
from tests.factories import DriverFactory, UserFactory
from usecases.switches import switch_set

pytestmark = pytest.mark.django_db
OPS = Actor.system("test ops")


@given(driver_id=st.integers(min_value=1, max_value=10**9), low=st.integers(0, 100), high=st.integers(0, 100))
def test_growing_the_percentage_only_ever_adds_drivers(driver_id, low, high):
    low, high = sorted((low, high))
    bucket = rollout_bucket("v2_offers", driver_id)
    assert 0 <= bucket < 100
    assert not (bucket < low and not bucket < high)  # in at the lower share means in at the higher one
    assert bucket == rollout_bucket("v2_offers", driver_id)  # stable


def test_shares_are_close_to_the_percentage_and_independent_per_feature():
    ids = range(1, 20001)
    for percentage in (5, 25, 50):
        share = sum(rollout_bucket("v2_offers", i) < percentage for i in ids) / len(ids)
        assert abs(share - percentage / 100) < 0.02
    same = sum((rollout_bucket("v2_offers", i) < 50) == (rollout_bucket("v2_availability", i) < 50) for i in ids) / len(ids)
    assert abs(same - 0.5) < 0.03


def test_a_driver_is_in_only_with_switch_on_share_and_a_v2_app(settings):
    driver = DriverFactory(v2_connected_at=timezone.now(), app_version="2.0.0")
    in_share = rollout_bucket("v2_offers", driver.pk) + 1
    assert not feature_enabled_for(Feature.OFFERS, driver)  # switch off (the migration's default)
    switch_set(name="v2_offers", active=True, actor=OPS)
    rollout_set(feature="v2_offers", percentage=in_share - 1, actor=OPS)
    assert not feature_enabled_for(Feature.OFFERS, driver)
    rollout_set(feature="v2_offers", percentage=in_share, actor=OPS)
    assert feature_enabled_for(Feature.OFFERS, driver)
    settings.DISPATCH_V2_MIN_APP_VERSION = "2.0.1"
    assert not feature_enabled_for(Feature.OFFERS, driver)


def test_app_versions_compare_numerically():
    assert app_version_tuple("2.10.0") > app_version_tuple("2.9.9")
    assert app_version_tuple("2.0.0-beta1") >= app_version_tuple("2.0.0")


def test_flips_and_shares_are_audited_and_a_repeat_writes_nothing():
    switch_set(name="v2_offers", active=True, actor=OPS)
    switch_set(name="v2_offers", active=True, actor=OPS)
    rollout_set(feature="v2_offers", percentage=25, actor=OPS)
    rollout_set(feature="v2_offers", percentage=25, actor=OPS)
    assert list(AuditEvent.objects.order_by("id").values_list("kind", "before", "after")) == [
        ("switch.flipped", {"active": False}, {"active": True}),
        ("rollout.changed", {"percentage": 0}, {"percentage": 25}),
    ]


@pytest.mark.parametrize("feature, percentage", [("v3_teleport", 10), ("v2_offers", 101), ("v2_offers", -1), ("v2_offers", "50"), ("v2_offers", True)])
def test_bad_rollout_input_is_refused_and_changes_nothing(feature, percentage):
    with pytest.raises(InvalidInput):
        rollout_set(feature=feature, percentage=percentage, actor=OPS)
    assert RolloutPolicy.objects.get(feature="v2_offers").percentage == 0


def test_ops_flip_a_switch_in_admin_and_the_flip_is_audited_with_them(client, staff_groups):
    ops = UserFactory(is_staff=True, username="oncall")
    ops.groups.add(Group.objects.get(name="ops"))
    client.force_login(ops)
    switch = Switch.objects.get(name="v2_offers")
    response = client.post("/admin/waffle/switch/", {"action": "switch_on", "_selected_action": [switch.pk]}, follow=True)
    assert b"turned on" in response.content
    assert Switch.objects.get(pk=switch.pk).active
    flip = AuditEvent.objects.get(kind="switch.flipped")
    assert (flip.actor_kind, flip.actor_label, flip.after) == ("staff", "oncall", {"active": True})
    # the change form goes through the same service
    response = client.post(f"/admin/waffle/switch/{switch.pk}/change/", {"name": "v2_offers", "note": "incident 42"})
    assert response.status_code == 302
    assert not Switch.objects.get(pk=switch.pk).active
    assert AuditEvent.objects.filter(kind="switch.flipped").count() == 2
    policy = RolloutPolicy.objects.get(feature="v2_offers")
    assert client.post(f"/admin/rollout/rolloutpolicy/{policy.pk}/change/", {"percentage": 5}).status_code == 302
    assert RolloutPolicy.objects.get(pk=policy.pk).percentage == 5
    assert AuditEvent.objects.get(kind="rollout.changed").actor_label == "oncall"


def test_support_cannot_flip_switches(client, staff_groups):
    support = UserFactory(is_staff=True)
    support.groups.add(Group.objects.get(name="support"))
    client.force_login(support)
    switch = Switch.objects.get(name="v2_offers")
    client.post("/admin/waffle/switch/", {"action": "switch_on", "_selected_action": [switch.pk]})
    assert not Switch.objects.get(pk=switch.pk).active
    assert not AuditEvent.objects.exists()


def test_a_switch_cannot_be_renamed_or_added_in_admin_and_its_note_is_audited(client, staff_groups):
    # Given ops and the v2_offers switch, on
    ops = UserFactory(is_staff=True, username="oncall")
    ops.groups.add(Group.objects.get(name="ops"))
    client.force_login(ops)
    switch_set(name="v2_offers", active=True, actor=OPS)
    switch = Switch.objects.get(name="v2_offers")
    # When ops post a new name with the change form
    response = client.post(f"/admin/waffle/switch/{switch.pk}/change/", {"name": "v2_offers_old", "active": "on", "note": "renamed?"})
    # Then the name stays, the switch stays on, and the note's edit is on the record
    assert response.status_code == 302
    switch.refresh_from_db()
    assert (switch.name, switch.active, switch.note) == ("v2_offers", True, "renamed?")
    assert AuditEvent.objects.filter(kind="switch.updated", subject_id=str(switch.pk), actor_label="oncall").count() == 1
    # and nobody adds a switch, nor finds waffle's flags and samples in the console
    superuser = UserFactory(is_staff=True, is_superuser=True)
    client.force_login(superuser)
    assert client.get("/admin/waffle/switch/add/").status_code == 403
    assert client.get("/admin/waffle/flag/").status_code == 404
    assert client.get("/admin/waffle/sample/").status_code == 404
