"""Why an answer to an offer was refused: each a stable code for the app to act on."""

from dispatch.errors import DispatchError


class OfferExpired(DispatchError):
    code = "offer_expired"


class OfferTaken(DispatchError):
    code = "offer_taken"


class OfferWithdrawn(DispatchError):
    code = "offer_withdrawn"


class OfferAlreadyAnswered(DispatchError):
    code = "offer_already_answered"


class CredentialsRevoked(DispatchError):
    """The socket's token was deleted or its user deactivated since the socket authenticated."""

    code = "revoked"
    http_status = 401
