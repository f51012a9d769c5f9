"""Who may open the staff pages outside admin: support search (support and ops) and zone
health (ops). Drivers have logins too and are refused; signed-out visitors are sent to log in."""

from collections.abc import Callable
from functools import wraps
from typing import Any

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponseBase

SUPPORT_READERS = ("support", "ops")
OPS = ("ops",)


def is_in_groups(user: Any, groups: tuple[str, ...]) -> bool:
    return bool(user.is_active and (user.is_superuser or user.groups.filter(name__in=groups).exists()))


def staff_group_required(groups: tuple[str, ...]) -> Callable[[Callable[..., HttpResponseBase]], Callable[..., HttpResponseBase]]:
    def decorate(view: Callable[..., HttpResponseBase]) -> Callable[..., HttpResponseBase]:
        @wraps(view)
        def checked(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
            if not is_in_groups(request.user, groups):
                raise PermissionDenied(f"This page is for the {' and '.join(groups)} team(s).")
            return view(request, *args, **kwargs)

        return login_required(checked)

    return decorate
