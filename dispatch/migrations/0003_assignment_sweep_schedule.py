"""The periodic assignment sweep, as a django-celery-beat schedule ops can edit in admin."""

from django.db import migrations

TASK_NAME = "Assign waiting orders"


def create_schedule(apps, schema_editor):  # type: ignore[no-untyped-def]
    IntervalSchedule = apps.get_model("django_celery_beat", "IntervalSchedule")
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    every_10s, _ = IntervalSchedule.objects.get_or_create(every=10, period="seconds")
    PeriodicTask.objects.get_or_create(
        name=TASK_NAME,
        defaults={
            "task": "dispatch.assign_orders_due",
            "interval": every_10s,
            "description": "Retries orders waiting for a driver, oldest first. Safe to run twice.",
        },
    )


def delete_schedule(apps, schema_editor):  # type: ignore[no-untyped-def]
    apps.get_model("django_celery_beat", "PeriodicTask").objects.filter(name=TASK_NAME).delete()


class Migration(migrations.Migration):
    dependencies = [("dispatch", "0002_staff_groups"), ("django_celery_beat", "0019_alter_periodictasks_options")]
    operations = [migrations.RunPython(create_schedule, delete_schedule)]
