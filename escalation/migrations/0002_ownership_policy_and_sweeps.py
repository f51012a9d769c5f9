"""The ownership matrix, the default escalation policy, the escalation sweeps' schedules, and
what the staff groups may do with all of it. docs/ownership.md and docs/alerts.yml mirror
TEAMS and ROUTES (a test keeps them in step)."""

from django.contrib.auth.management import create_permissions
from django.db import migrations

TEAMS = [
    ("dispatchers", "Dispatchers", "The ops dispatchers of the zones: first to act on any stuck order"),
    ("zone-leads", "Zone leads", "The lead of each zone: escalations nobody took, and a zone's acceptance"),
    ("on-call", "On-call engineer", "SRE on call: the service itself, and what nobody else acknowledged"),
]
# alert -> team; the runbook of each is docs/runbooks/<alert with dashes>.md
ROUTES = {
    "order_unassigned": "dispatchers",
    "order_no_candidates": "dispatchers",
    "pickup_overdue": "dispatchers",
    "delivery_overdue": "dispatchers",
    "driver_silent": "dispatchers",
    "offers_missed": "dispatchers",
    "reassign_limit": "dispatchers",
    "orders_backlog": "dispatchers",
    "acceptance_low": "zone-leads",
    "sweep_late": "on-call",
    "service_not_ready": "on-call",
    "webhooks_failing": "on-call",
    "notifier_failing": "on-call",
}
# L1 when the trigger fires (the alert's owner), L2 after 10 minutes, L3 after 30.
LEVELS = [(1, 0, None), (2, 600, "zone-leads"), (3, 1800, "on-call")]
SWEEPS = [
    ("Escalate orders", "escalation.escalate_orders_due", 10, "Reassigns missed pickups, opens due escalations, raises unacknowledged ones."),
    ("Send notifications", "escalation.send_notifications_due", 10, "Sends and retries escalation notifications that are due."),
]
OPS = {
    "escalation": ("view", "change"),
    "team": ("view", "add", "change"),
    "notificationchannel": ("view", "add", "change", "delete"),
    "alertroute": ("view", "change"),
    "escalationpolicy": ("view", "add", "change"),
    "escalationlevel": ("view", "add", "change", "delete"),
    "notification": ("view",),
}


def runbook(alert: str) -> str:
    return f"docs/runbooks/{alert.replace('_', '-')}.md"


def install(apps, schema_editor):  # type: ignore[no-untyped-def]
    seed(apps)
    grant(apps)


def seed(apps):  # type: ignore[no-untyped-def]
    Team = apps.get_model("escalation", "Team")
    NotificationChannel = apps.get_model("escalation", "NotificationChannel")
    AlertRoute = apps.get_model("escalation", "AlertRoute")
    EscalationPolicy = apps.get_model("escalation", "EscalationPolicy")
    EscalationLevel = apps.get_model("escalation", "EscalationLevel")
    teams = {}
    for slug, name, description in TEAMS:
        teams[slug], created = Team.objects.get_or_create(slug=slug, defaults={"name": name, "description": description})
        if created:
            NotificationChannel.objects.create(team=teams[slug], kind="log")
    for alert, team in ROUTES.items():
        AlertRoute.objects.get_or_create(alert=alert, defaults={"team": teams[team], "runbook": runbook(alert)})
    policy, created = EscalationPolicy.objects.get_or_create(is_default=True, zone=None)
    if created:
        for level, after_s, team in LEVELS:
            EscalationLevel.objects.create(policy=policy, level=level, after_s=after_s, team=teams[team] if team else None)
    IntervalSchedule = apps.get_model("django_celery_beat", "IntervalSchedule")
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    for title, task, seconds, description in SWEEPS:
        every, _ = IntervalSchedule.objects.get_or_create(every=seconds, period="seconds")
        PeriodicTask.objects.get_or_create(name=title, defaults={"task": task, "interval": every, "description": description})


def grant(apps):  # type: ignore[no-untyped-def]
    for app_config in apps.get_app_configs():
        app_config.models_module = True
        create_permissions(app_config, apps=apps, verbosity=0)
        app_config.models_module = None
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    for name, grants in (("ops", OPS), ("support", {model: ("view",) for model in OPS})):
        group, _ = Group.objects.get_or_create(name=name)
        for model, actions in grants.items():
            codenames = [f"{action}_{model}" for action in actions]
            group.permissions.add(*Permission.objects.filter(content_type__app_label="escalation", codename__in=codenames))
    ops = Group.objects.get(name="ops")
    ops.permissions.add(*Permission.objects.filter(content_type__app_label="observability", codename="view_sweeprun"))


def uninstall(apps, schema_editor):  # type: ignore[no-untyped-def]
    apps.get_model("django_celery_beat", "PeriodicTask").objects.filter(name__in=[s[0] for s in SWEEPS]).delete()
    for model in ("EscalationLevel", "EscalationPolicy", "AlertRoute", "NotificationChannel", "Team"):
        apps.get_model("escalation", model).objects.all().delete()


class Migration(migrations.Migration):
    dependencies = [
        ("escalation", "0001_initial"),
        ("observability", "0001_initial"),
        ("dispatch", "0002_staff_groups"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]
    operations = [migrations.RunPython(install, uninstall)]
