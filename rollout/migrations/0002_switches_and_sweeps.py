"""The v2 kill-switches (off), their rollout shares (0%), and the v2 sweeps' schedules."""

from django.db import migrations

FEATURES = ["v2_offers", "v2_availability"]
SWEEPS = [
    ("Expire offers", "offers.expire_offers_due", 2, "Lapses pending offers past their deadline and moves their orders on."),
    ("End breaks", "availability.end_breaks_due", 15, "Ends driver breaks at their end time."),
    ("Offline silent drivers", "availability.offline_silent_drivers_due", 15, "Takes drivers offline who stopped sending heartbeats."),
]


def install(apps, schema_editor):  # type: ignore[no-untyped-def]
    Switch = apps.get_model("waffle", "Switch")
    RolloutPolicy = apps.get_model("rollout", "RolloutPolicy")
    IntervalSchedule = apps.get_model("django_celery_beat", "IntervalSchedule")
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    for name in FEATURES:
        Switch.objects.get_or_create(name=name, defaults={"active": False, "note": "v2 kill-switch: off means v1 behaviour from the next decision on"})
        RolloutPolicy.objects.get_or_create(feature=name, defaults={"percentage": 0})
    for title, task, seconds, description in SWEEPS:
        every, _ = IntervalSchedule.objects.get_or_create(every=seconds, period="seconds")
        PeriodicTask.objects.get_or_create(name=title, defaults={"task": task, "interval": every, "description": description})


def uninstall(apps, schema_editor):  # type: ignore[no-untyped-def]
    apps.get_model("waffle", "Switch").objects.filter(name__in=FEATURES).delete()
    apps.get_model("rollout", "RolloutPolicy").objects.filter(feature__in=FEATURES).delete()
    apps.get_model("django_celery_beat", "PeriodicTask").objects.filter(name__in=[s[0] for s in SWEEPS]).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("rollout", "0001_initial"),
        ("waffle", "0004_update_everyone_nullbooleanfield"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]
    operations = [migrations.RunPython(install, uninstall)]
