"""How the support pages show a change and the time between two steps."""

from datetime import timedelta
from typing import Any

from django import template

from audit import decisions

register = template.Library()


@register.filter
def state_brief(state: Any) -> str:
    """{'status': 'assigned', 'driver': 2} as `status=assigned, driver=2`; nothing as a dash."""
    if state is None or state == {}:
        return "—"
    if isinstance(state, dict):
        return ", ".join(f"{key}={'—' if value is None else value}" for key, value in state.items())
    return str(state)


@register.filter
def duration_brief(delta: timedelta | None) -> str:
    """A gap between steps as people say it: 7 ms, 3.2 s, 4 min 10 s, 2 h 5 min."""
    if delta is None:
        return ""
    seconds = delta.total_seconds()
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, seconds = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {seconds} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min" if hours < 48 else f"{hours // 24} days {hours % 24} h"


@register.filter
def decision_lines(data: Any) -> list[str]:
    """A `dispatch.decided` event's candidates as lines a person reads (audit.decisions)."""
    return decisions.decision_lines(data)
