"""The sweep that sends due fulfillment steps to the shops, as a django-celery-beat schedule
ops can edit in admin."""

from django.db import migrations

TASK_NAME = "Report fulfillments"


def create_schedule(apps, schema_editor):  # type: ignore[no-untyped-def]
    IntervalSchedule = apps.get_model("django_celery_beat", "IntervalSchedule")
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    every_10s, _ = IntervalSchedule.objects.get_or_create(every=10, period="seconds")
    PeriodicTask.objects.get_or_create(
        name=TASK_NAME,
        defaults={
            "task": "vendure.report_fulfillments_due",
            "interval": every_10s,
            "description": "Sends pickups and deliveries the shops have not heard of yet, retrying with backoff. Safe to run twice.",
        },
    )


def delete_schedule(apps, schema_editor):  # type: ignore[no-untyped-def]
    apps.get_model("django_celery_beat", "PeriodicTask").objects.filter(name=TASK_NAME).delete()


class Migration(migrations.Migration):
    dependencies = [("vendure", "0002_fulfillment_steps_outbox"), ("django_celery_beat", "0019_alter_periodictasks_options")]
    operations = [migrations.RunPython(create_schedule, delete_schedule)]
