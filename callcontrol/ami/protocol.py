"""AMI without I/O: manager messages (header mappings) in, typed events and answers out.

A message is a mapping of header names to values (a list of values when a header repeats), as
panoramisk hands them over. Header names are compared without regard to case.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

Headers = Mapping[str, Any]


def normalize(message: Headers) -> dict[str, str]:
    """Lower-case header names; a repeated header keeps its first value."""
    out: dict[str, str] = {}
    for key, value in message.items():
        if isinstance(value, list | tuple):
            value = value[0] if value else ""
        out.setdefault(str(key).lower(), str(value))
    return out


@dataclass(frozen=True, kw_only=True)
class AmiEvent:
    """Base of every AMI event; ``name`` is the ``Event`` header."""

    name: str


@dataclass(frozen=True, kw_only=True)
class ContactStatus(AmiEvent):
    """A PJSIP contact changed: ``status`` is ``Reachable``, ``Unreachable``, ``Created``,
    ``Removed``, ``Updated``, ``NonQualified`` or ``Unknown``."""

    endpoint: str
    aor: str
    status: str
    uri: str = ""
    roundtrip_usec: int | None = None


@dataclass(frozen=True, kw_only=True)
class DeviceStateChange(AmiEvent):
    """A device's state changed (``NOT_INUSE``, ``INUSE``, ``RINGING``, ``UNAVAILABLE``...)."""

    device: str
    state: str


@dataclass(frozen=True, kw_only=True)
class PeerStatus(AmiEvent):
    """A peer's registration/reachability changed (``peer`` is e.g. ``PJSIP/agent1``)."""

    channel_type: str
    peer: str
    status: str
    cause: str = ""
    address: str = ""


@dataclass(frozen=True, kw_only=True)
class FullyBooted(AmiEvent):
    """Asterisk finished booting (sent on every manager login)."""

    status: str = ""
    uptime_s: int | None = None


@dataclass(frozen=True, kw_only=True)
class UnknownAmiEvent(AmiEvent):
    """Any other event, with its headers (lower-cased names)."""

    headers: Mapping[str, str] = field(default_factory=dict)


def _int_or_none(value: str) -> int | None:
    try:
        return int(value)
    except ValueError:
        return None


def parse_ami_event(message: Headers) -> AmiEvent:
    """The typed event for one AMI event message."""
    h = normalize(message)
    name = h.get("event", "")
    if name == "ContactStatus" and "aor" in h:
        return ContactStatus(
            name=name,
            endpoint=h.get("endpointname", ""),
            aor=h["aor"],
            status=h.get("contactstatus", ""),
            uri=h.get("uri", ""),
            roundtrip_usec=_int_or_none(h.get("roundtripusec", "")),
        )
    if name == "DeviceStateChange" and "device" in h:
        return DeviceStateChange(name=name, device=h["device"], state=h.get("state", ""))
    if name == "PeerStatus" and "peer" in h:
        return PeerStatus(
            name=name,
            channel_type=h.get("channeltype", ""),
            peer=h["peer"],
            status=h.get("peerstatus", ""),
            cause=h.get("cause", ""),
            address=h.get("address", ""),
        )
    if name == "FullyBooted":
        return FullyBooted(
            name=name, status=h.get("status", ""), uptime_s=_int_or_none(h.get("uptime", ""))
        )
    return UnknownAmiEvent(name=name, headers=h)


def is_error(message: Headers) -> bool:
    """Whether an action response says the action failed."""
    return normalize(message).get("response", "").lower() in ("error", "fail", "failure")


def error_message(message: Headers) -> str:
    """The ``Message`` header of a failed response."""
    return normalize(message).get("message", "")


def prepare_action(action: Mapping[str, str]) -> dict[str, str]:
    """A copy of ``action`` ready to send: an Originate always carries an explicit ``Async``
    header (``true`` unless the caller chose), so its answer never waits for the call."""
    out = dict(action)
    name = next((v for k, v in out.items() if k.lower() == "action"), "")
    if not name:
        raise ValueError("an AMI action needs an 'Action' header")
    if name.lower() == "originate" and not any(k.lower() == "async" for k in out):
        out["Async"] = "true"
    return out


# Best first: what one endpoint's contacts add up to.
_CONTACT_RANK = ("Reachable", "NonQualified", "Unknown", "Created", "Updated", "Unreachable")


def contact_statuses(messages: Iterable[Headers]) -> dict[str, str]:
    """Endpoint -> best contact status, from a ``PJSIPShowContacts`` answer.

    An endpoint with several contacts counts as reachable when any one is. Endpoints with no
    contact (not registered) do not appear.
    """
    best: dict[str, str] = {}
    for message in messages:
        h = normalize(message)
        if h.get("event") != "ContactList":
            continue
        endpoint = h.get("endpoint") or h.get("aor") or h.get("objectname", "").split(";@")[0]
        status = h.get("status", "Unknown")
        if not endpoint:
            continue
        current = best.get(endpoint)
        if current is None or _rank(status) < _rank(current):
            best[endpoint] = status
    return best


def _rank(status: str) -> int:
    return _CONTACT_RANK.index(status) if status in _CONTACT_RANK else len(_CONTACT_RANK)
