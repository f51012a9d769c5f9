"""The sweep that deletes drivers' position history past its retention, as a django-celery-beat schedule."""

from django.db import migrations

TASK_NAME = "Delete old position history"


def create_schedule(apps, schema_editor):  # type: ignore[no-untyped-def]
    IntervalSchedule = apps.get_model("django_celery_beat", "IntervalSchedule")
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    every_10min, _ = IntervalSchedule.objects.get_or_create(every=10, period="minutes")
    PeriodicTask.objects.get_or_create(
        name=TASK_NAME,
        defaults={
            "task": "availability.position_history_delete_due",
            "interval": every_10min,
            "description": "Deletes drivers' position history older than DISPATCH_POSITION_RETENTION_DAYS, 10,000 rows a run. Safe to run twice.",
        },
    )


def delete_schedule(apps, schema_editor):  # type: ignore[no-untyped-def]
    apps.get_model("django_celery_beat", "PeriodicTask").objects.filter(name=TASK_NAME).delete()


class Migration(migrations.Migration):
    dependencies = [("availability", "0002_positionfix"), ("django_celery_beat", "0019_alter_periodictasks_options")]
    operations = [migrations.RunPython(create_schedule, delete_schedule)]
