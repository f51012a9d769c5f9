"""Who did something: the system, a driver, a staff user or a shop."""

from dataclasses import dataclass
from typing import TYPE_CHECKING

from audit.models import AuditEvent

if TYPE_CHECKING:
    from django.contrib.auth.models import AbstractBaseUser, AnonymousUser


@dataclass(frozen=True)
class Actor:
    kind: str
    id: str = ""
    label: str = ""

    @classmethod
    def system(cls, label: str = "dispatch") -> "Actor":
        return cls(AuditEvent.ActorKind.SYSTEM, "", label)

    @classmethod
    def staff(cls, user: "AbstractBaseUser | AnonymousUser") -> "Actor":
        return cls(AuditEvent.ActorKind.STAFF, str(user.pk), user.get_username())

    @classmethod
    def driver(cls, driver_id: int, label: str) -> "Actor":
        return cls(AuditEvent.ActorKind.DRIVER, str(driver_id), label)

    @classmethod
    def shop(cls, channel_token: str, label: str) -> "Actor":
        return cls(AuditEvent.ActorKind.SHOP, channel_token, label)


SYSTEM = Actor.system()
