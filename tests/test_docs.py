"""The ownership matrix, docs/ownership.md, docs/alerts.yml and the runbooks say the same thing."""

import importlib
import re
from pathlib import Path

import yaml

from escalation.models import TRIGGERS, AlertKind

ROOT = Path(__file__).resolve().parent.parent
SEED = importlib.import_module("escalation.migrations.0002_ownership_policy_and_sweeps")
# Alerts added after the first seeding bring their routes in a migration of their own.
ADDED = importlib.import_module("escalation.migrations.0004_predicted_late_and_handover_triggers")
ROUTES = {**SEED.ROUTES, **ADDED.ROUTES}


def ownership_rows():
    """(alert, team, runbook link) of each row of the matrix table in docs/ownership.md."""
    text = (ROOT / "docs/ownership.md").read_text()
    matrix = text.split("## The matrix", 1)[1].split("##", 1)[0]
    rows = re.findall(r"^\| `(\w+)` \| `([\w-]+)` \| [^|]+ \| \[[\w-]+\]\((runbooks/[\w-]+\.md)\) \|$", matrix, re.MULTILINE)
    return {alert: (team, runbook) for alert, team, runbook in rows}


def test_every_alert_kind_has_an_owner_and_a_runbook():
    assert set(ROUTES) == set(AlertKind.values)
    for alert in AlertKind.values:
        assert (ROOT / SEED.runbook(alert)).is_file(), f"no runbook for {alert}"


def test_ownership_md_matches_the_seeded_matrix():
    rows = ownership_rows()
    assert set(rows) == set(ROUTES)
    for alert, (team, runbook) in rows.items():
        assert team == ROUTES[alert], alert
        assert f"docs/{runbook}" == SEED.runbook(alert)
    teams = {slug for slug, _, _ in SEED.TEAMS}
    assert set(ROUTES.values()) <= teams


def test_alert_rules_name_the_owner_and_runbook_of_their_kind():
    rules = [rule for group in yaml.safe_load((ROOT / "docs/alerts.yml").read_text())["groups"] for rule in group["rules"]]
    assert rules
    rows = ownership_rows()
    for rule in rules:
        kind = rule["labels"]["alert_kind"]
        assert rule["labels"]["team"] == ROUTES[kind], rule["alert"]
        assert rule["annotations"]["runbook_url"] == SEED.runbook(kind)
        assert f"`{rule['alert']}`" in (ROOT / "docs/ownership.md").read_text()
        assert rows[kind][0] == rule["labels"]["team"]
    # Stuck orders are escalated by the service itself; every other kind has a Prometheus rule.
    assert {kind for kind in AlertKind.values if kind not in TRIGGERS} == {rule["labels"]["alert_kind"] for rule in rules}
