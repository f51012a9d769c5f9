"""Refusals of a delivery that needs a handover code: each a clear 409 with its own code."""

from dispatch.errors import DispatchError


class HandoverCodeRequired(DispatchError):
    code = "handover_code_required"


class HandoverCodeWrong(DispatchError):
    code = "handover_code_wrong"


class HandoverCodeLocked(DispatchError):
    code = "handover_code_locked"
