"""The two staff groups: `ops` change dispatch data, `support` only read it."""

from django.contrib.auth.management import create_permissions
from django.db import migrations

# (app_label, model): what each group may do. Orders and audit events have no add or delete
# for anyone: orders come from shops, audit events are written only by services.
OPS = {
    ("dispatch", "zone"): ("view", "add", "change"),
    ("dispatch", "shopchannel"): ("view", "add", "change"),
    ("dispatch", "driver"): ("view", "add", "change"),
    ("dispatch", "order"): ("view", "change"),
    ("audit", "auditevent"): ("view",),
    ("vendure", "webhookevent"): ("view",),
    ("vendure", "fulfillmentreport"): ("view",),
    ("waffle", "switch"): ("view", "change"),
    ("django_celery_beat", "periodictask"): ("view", "change"),
    ("django_celery_beat", "intervalschedule"): ("view", "add", "change"),
    ("django_celery_beat", "crontabschedule"): ("view", "add", "change"),
    ("auth", "user"): ("view",),
}
SUPPORT = {key: ("view",) for key in OPS}


def create_groups(apps, schema_editor):  # type: ignore[no-untyped-def]
    # Permissions are normally made after all migrations ran; make them now to use them.
    for app_config in apps.get_app_configs():
        app_config.models_module = True
        create_permissions(app_config, apps=apps, verbosity=0)
        app_config.models_module = None
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    for name, grants in (("ops", OPS), ("support", SUPPORT)):
        group, _ = Group.objects.get_or_create(name=name)
        for (app_label, model), actions in grants.items():
            codenames = [f"{action}_{model}" for action in actions]
            group.permissions.add(*Permission.objects.filter(content_type__app_label=app_label, codename__in=codenames))


def delete_groups(apps, schema_editor):  # type: ignore[no-untyped-def]
    apps.get_model("auth", "Group").objects.filter(name__in=["ops", "support"]).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("dispatch", "0001_initial"),
        ("audit", "0001_initial"),
        ("vendure", "0001_initial"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
        ("waffle", "0004_update_everyone_nullbooleanfield"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]
    operations = [migrations.RunPython(create_groups, delete_groups)]
