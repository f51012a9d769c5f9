"""Escalation: no order waits silently. Triggers per zone, policies with levels, the ownership
matrix (alert -> team -> channel), notifiers, and automatic reassignment of what a machine
can repair on its own."""
