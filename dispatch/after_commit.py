"""The one way work is scheduled for after a change commits.

Pushes to drivers, reports to the shop, notifications and task enqueues are hints or
deliveries of a change that already holds in the database: they run only once it committed
(nothing is sent for a rolled-back change), and a failing one is logged and never undoes or
fails the change, nor keeps the ones after it from running. What must happen eventually is a
row with a deadline and a sweep; the work scheduled here only makes it happen sooner.
"""

from collections.abc import Callable

from django.db import transaction


def after_commit(effect: Callable[[], object]) -> None:
    """Run `effect` once the current transaction commits; at once when there is none.

    Registered with the savepoint at hand, so work scheduled inside a block that rolled back
    to its savepoint is dropped with it.
    """
    transaction.on_commit(effect, robust=True)
