"""How a dispatch decision's record (the audit event `dispatch.decided`) reads to a person:
the support timeline and the order's page in admin show the same lines."""

from datetime import timedelta
from typing import Any


def duration_brief(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    if seconds < 60:
        return f"{seconds} s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {seconds} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min"


# What each reason in a dispatch decision's record means to a person reading the timeline.
DECISION_REASONS = {
    "declined": "declined it",
    "lapsed": "let it lapse",
    "reassigned_away": "lost it by reassignment",
    "in_another_offer": "was taking another offer",
    "in_another_decision": "was being offered another order at that moment",
    "at_capacity": "at capacity",
    "deactivated": "account deactivated",
    "not_in_rollout": "not in the v2 rollout",
    "app_speaks_v1": "app speaks v1",
    "offers_switched_off": "offers switched off",
}


def decision_lines(data: Any) -> list[str]:
    """A `dispatch.decided` event's candidates as lines a person reads: "1. Amira: offered
    (nearest, 420 m, idle 5 min 3 s)", "Ben: skipped, declined it at 14:02:07". Plain text: the
    template escapes it like any other value."""
    if not isinstance(data, dict):
        return []
    lines = []
    for row in data.get("candidates") or []:
        if not isinstance(row, dict):
            continue
        name = str(row.get("name") or f"driver {row.get('driver')}")
        basis = []
        if row.get("distance_m") is not None:
            basis.append(f"nearest, {row['distance_m']} m")
        elif row.get("rank"):
            basis.append("idle longest")
        if row.get("idle_s") is not None:
            basis.append(f"idle {duration_brief(timedelta(seconds=row['idle_s']))}")
        what = str(row.get("result") or "").replace("_", " ")
        reason = DECISION_REASONS.get(str(row.get("reason") or ""), str(row.get("reason") or "").replace("_", " "))
        if reason:
            what += f", {reason}"
        if row.get("at"):
            what += f" at {str(row['at'])[11:19]}"
        prefix = f"{row['rank']}. " if row.get("rank") else ""
        lines.append(f"{prefix}{name}: {what}" + (f" ({', '.join(basis)})" if basis else ""))
    return lines
