"""One exception hierarchy for callcontrol.

    CallControlError
    ├── ConfigError              bad configuration (message carries FILE:LINE:COL where known)
    ├── FlowError                a flow file that cannot be loaded (carries every finding)
    ├── TelephonyError           something went wrong talking to the PBX
    │   ├── PbxUnreachable       cannot reach Asterisk (connection refused, timeout, link down)
    │   └── PbxRefused           Asterisk answered and refused the request
    │       ├── NotFound         404: the channel/bridge/playback is gone
    │       ├── Conflict         409: wrong state (e.g. channel not in Stasis)
    │       └── Unprocessable    422/400: bad request body or parameters
    ├── StoreError               the interaction store failed (database or journal)
    ├── Refused                  the domain refuses a request (stable id + details)
    │   ├── UnknownObject        no such agent, call, queue...
    │   ├── InvalidRequest       bad input: an unknown action, reason or target
    │   ├── WrongState           not now: e.g. an agent who is not on a call
    │   ├── Forbidden            not for this principal: e.g. another agent's call
    │   └── Gone                 it existed and is no more: e.g. a purged recording
    └── ApiError                 the HTTP layer's own: a request to our API is invalid

Only the HTTP layer turns these into status codes (callcontrol.api.server), using each error's
stable ``error_id``; the domain raises no HTTP code.
"""

from __future__ import annotations

from typing import Any


class CallControlError(Exception):
    """Base of every error callcontrol raises on purpose."""

    error_id = "internal"


class ConfigError(CallControlError):
    """The configuration is invalid; ``str(err)`` lists every finding with its place."""

    error_id = "config_invalid"


class FlowError(CallControlError):
    """A flow could not be loaded; ``findings`` holds ``PATH:LINE:COL: message`` strings."""

    error_id = "flow_invalid"

    def __init__(self, findings: list[str]) -> None:
        super().__init__("\n".join(findings))
        self.findings = findings


class TelephonyError(CallControlError):
    """Base of errors met while driving the PBX."""

    error_id = "telephony"


class PbxUnreachable(TelephonyError):
    """Asterisk could not be reached (connection refused, timeout, link down)."""

    error_id = "pbx_unreachable"


class PbxRefused(TelephonyError):
    """Asterisk answered and refused the request."""

    error_id = "pbx_refused"

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"Asterisk refused ({status}): {message}")
        self.status = status
        self.message = message


class NotFound(PbxRefused):
    """The channel, bridge, playback or recording no longer exists (HTTP 404)."""

    error_id = "pbx_not_found"


class Conflict(PbxRefused):
    """The object is in the wrong state for the request (HTTP 409)."""

    error_id = "pbx_conflict"


class Unprocessable(PbxRefused):
    """Asterisk rejected the request's parameters (HTTP 400/422)."""

    error_id = "pbx_unprocessable"


class StoreError(CallControlError):
    """The interaction store (journal or database) failed."""

    error_id = "store"


class Refused(CallControlError):
    """The domain refuses a request: ``error_id`` names why, ``details`` say more."""

    def __init__(self, error_id: str, message: str, details: Any | None = None) -> None:
        super().__init__(message)
        self.error_id = error_id
        self.message = message
        self.details = details


class UnknownObject(Refused):
    """The request names an object that does not exist."""


class InvalidRequest(Refused):
    """The request's input is invalid."""


class WrongState(Refused):
    """The request cannot apply to the object in its current state."""


class Forbidden(Refused):
    """The object exists but is not this principal's to see or change."""


class Gone(Refused):
    """The object existed and was removed on purpose (e.g. by retention)."""


class ApiError(CallControlError):
    """An invalid request to callcontrol's HTTP API."""

    def __init__(
        self, status: int, error_id: str, message: str, details: Any | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.error_id = error_id
        self.message = message
        self.details = details
