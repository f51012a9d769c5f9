"""A hint to open driver sockets when a token is deleted, wherever it is deleted.

Not a business rule: a socket re-reads its token and user before every frame that changes
state and on its own timer, and closes when either was revoked. This only makes it close at
once when a token is deleted anywhere (admin, shell, a command). A deactivated account is
handled by `usecases.drivers.driver_deactivated` (the user admin calls it).
"""

from typing import Any

from rest_framework.authtoken.models import Token

from dispatch.after_commit import after_commit


def on_token_deleted(sender: Any, instance: Token, **kwargs: Any) -> None:
    from offers.notify import driver_credentials_changed_send

    user_id = instance.user_id
    after_commit(lambda: driver_credentials_changed_send(user_id=user_id))


def connect() -> None:
    from django.db.models.signals import post_delete

    post_delete.connect(on_token_deleted, sender=Token, dispatch_uid="offers.token_deleted")
