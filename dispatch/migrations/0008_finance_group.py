"""The `finance` staff group: reads orders (fees, shops, zones) in the ops console, and nothing else.

No audit trail (it holds drivers' positions and names beyond what a report needs), no drivers,
no secrets (a shop channel's secrets are hidden from every viewer), and no write of any kind.
"""

from django.contrib.auth.management import create_permissions
from django.db import migrations

FINANCE = {
    ("dispatch", "order"): ("view",),
    ("dispatch", "zone"): ("view",),
    ("dispatch", "shopchannel"): ("view",),
}


def create_finance_group(apps, schema_editor):  # type: ignore[no-untyped-def]
    # Permissions are normally made after all migrations ran; make them now to use them.
    for app_config in apps.get_app_configs():
        app_config.models_module = True
        create_permissions(app_config, apps=apps, verbosity=0)
        app_config.models_module = None
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    group, _ = Group.objects.get_or_create(name="finance")
    for (app_label, model), actions in FINANCE.items():
        codenames = [f"{action}_{model}" for action in actions]
        group.permissions.add(*Permission.objects.filter(content_type__app_label=app_label, codename__in=codenames))


def delete_finance_group(apps, schema_editor):  # type: ignore[no-untyped-def]
    apps.get_model("auth", "Group").objects.filter(name="finance").delete()


class Migration(migrations.Migration):
    dependencies = [
        ("dispatch", "0007_api_token_proxy"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]
    operations = [migrations.RunPython(create_finance_group, delete_finance_group)]
