"""Ops may change rollout shares; support may read them."""

from django.contrib.auth.management import create_permissions
from django.db import migrations


def grant(apps, schema_editor):  # type: ignore[no-untyped-def]
    for app_config in apps.get_app_configs():
        app_config.models_module = True
        create_permissions(app_config, apps=apps, verbosity=0)
        app_config.models_module = None
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    grants = {"ops": ["view_rolloutpolicy", "change_rolloutpolicy", "view_offer"], "support": ["view_rolloutpolicy", "view_offer"]}
    for name, codenames in grants.items():
        group, _ = Group.objects.get_or_create(name=name)
        group.permissions.add(*Permission.objects.filter(codename__in=codenames, content_type__app_label__in=["rollout", "offers"]))


def revoke(apps, schema_editor):  # type: ignore[no-untyped-def]
    Permission = apps.get_model("auth", "Permission")
    for group in apps.get_model("auth", "Group").objects.filter(name__in=["ops", "support"]):
        group.permissions.remove(*Permission.objects.filter(content_type__app_label__in=["rollout", "offers"]))


class Migration(migrations.Migration):
    dependencies = [("rollout", "0002_switches_and_sweeps"), ("offers", "0001_initial"), ("dispatch", "0002_staff_groups")]
    operations = [migrations.RunPython(grant, revoke)]
