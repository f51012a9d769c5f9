import pytest
from django.core.management import call_command
from django.db import connection


@pytest.mark.django_db(transaction=True)
def test_migrations_reverse_to_zero_and_apply_again():
    for app in ("vendure", "dispatch", "audit"):
        call_command("migrate", app, "zero", verbosity=0)
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_trigger WHERE tgname LIKE 'audit_event_%%'")
        assert cursor.fetchone()[0] == 0
    call_command("migrate", verbosity=0)
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_trigger WHERE tgname LIKE 'audit_event_%%'")
        assert cursor.fetchone()[0] == 2
    from django.contrib.auth.models import Group
    from django_celery_beat.models import PeriodicTask

    assert set(Group.objects.values_list("name", flat=True)) >= {"ops", "support"}
    assert PeriodicTask.objects.filter(task="dispatch.assign_orders_due", enabled=True).exists()


@pytest.mark.django_db
def test_models_and_migrations_agree():
    call_command("makemigrations", "--check", "--dry-run", verbosity=0)


def test_production_settings_pass_the_deploy_check():
    import os
    import subprocess
    import sys

    # the browser tests' session sets DJANGO_ALLOW_ASYNC_UNSAFE for their own process only
    env = {
        **{k: v for k, v in os.environ.items() if k != "DJANGO_ALLOW_ASYNC_UNSAFE"},
        "DISPATCH_ENV": "production",
        "DJANGO_SECRET_KEY": "x" * 60 + "production-like-secret-key",
        "DJANGO_ALLOWED_HOSTS": "dispatch.example.com",
    }
    result = subprocess.run([sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"], env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
