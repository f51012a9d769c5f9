"""How a sweep becomes a Celery task: thin, and every run recorded."""

import functools
from collections.abc import Callable
from typing import Any

from celery import shared_task

from observability.services import sweep_run


def sweep_task(name: str) -> Callable[[Callable[[], int]], Any]:
    """`@sweep_task("offers.expire_offers_due")` over a function that calls one sweep."""

    def wrap(sweep: Callable[[], int]) -> Any:
        @shared_task(name=name, ignore_result=True)
        @functools.wraps(sweep)
        def run() -> int:
            return sweep_run(name, sweep)

        return run

    return wrap
