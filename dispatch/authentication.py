"""Driver API tokens: the one check of a presented key, for REST and the socket alike."""

from typing import Any

from rest_framework import exceptions
from rest_framework.authentication import TokenAuthentication
from rest_framework.authtoken.models import Token

TOKEN_KEY_MAX_LENGTH = Token._meta.get_field("key").max_length or 40


def token_key_is_well_formed(key: str) -> bool:
    """Whether a presented key could be a stored one at all: printable ASCII that fits the column.

    Anything else (NUL, which PostgreSQL refuses in text; a lone surrogate; a megabyte of text)
    is refused before it reaches the database, as an unknown token is."""
    return 0 < len(key) <= TOKEN_KEY_MAX_LENGTH and key.isascii() and key.isprintable()


class DriverTokenAuthentication(TokenAuthentication):
    """DRF's token authentication, refusing malformed keys with a 401 instead of a database error."""

    def authenticate_credentials(self, key: str) -> Any:
        if not token_key_is_well_formed(key):
            raise exceptions.AuthenticationFailed("Invalid token.")
        return super().authenticate_credentials(key)
