"""Support and ops see an order's proofs of delivery on its page in admin (read only)."""

from django.contrib.auth.management import create_permissions
from django.db import migrations


def grant(apps, schema_editor):  # type: ignore[no-untyped-def]
    app_config = apps.get_app_config("proof")
    app_config.models_module = True
    create_permissions(app_config, apps=apps, verbosity=0)  # normally made after all migrations ran
    app_config.models_module = None
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    view = Permission.objects.filter(content_type__app_label="proof", codename="view_deliveryproof")
    for group in Group.objects.filter(name__in=["ops", "support"]):
        group.permissions.add(*view)


def revoke(apps, schema_editor):  # type: ignore[no-untyped-def]
    Permission = apps.get_model("auth", "Permission")
    for group in apps.get_model("auth", "Group").objects.filter(name__in=["ops", "support"]):
        group.permissions.remove(*Permission.objects.filter(content_type__app_label="proof", codename="view_deliveryproof"))


class Migration(migrations.Migration):
    dependencies = [("proof", "0002_handovercode"), ("dispatch", "0002_staff_groups"), ("auth", "0012_alter_user_first_name_max_length")]
    operations = [migrations.RunPython(grant, revoke)]
