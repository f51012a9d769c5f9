"""The sweep that drops presence rows of sockets whose server died, as a django-celery-beat schedule."""

from django.db import migrations

TASK_NAME = "Drop stale driver sockets"


def create_schedule(apps, schema_editor):  # type: ignore[no-untyped-def]
    IntervalSchedule = apps.get_model("django_celery_beat", "IntervalSchedule")
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    every_30s, _ = IntervalSchedule.objects.get_or_create(every=30, period="seconds")
    PeriodicTask.objects.get_or_create(
        name=TASK_NAME,
        defaults={
            "task": "offers.drop_stale_sockets_due",
            "interval": every_30s,
            "description": "Deletes presence rows of driver sockets not vouched for within the presence timeout (their server died). Safe to run twice.",
        },
    )


def delete_schedule(apps, schema_editor):  # type: ignore[no-untyped-def]
    apps.get_model("django_celery_beat", "PeriodicTask").objects.filter(name=TASK_NAME).delete()


class Migration(migrations.Migration):
    dependencies = [("offers", "0004_driver_socket_presence_rows"), ("django_celery_beat", "0019_alter_periodictasks_options")]
    operations = [migrations.RunPython(create_schedule, delete_schedule)]
