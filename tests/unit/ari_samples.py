"""ARI JSON samples shaped as Asterisk 22 sends them, shared by the ARI unit tests."""

from __future__ import annotations

from typing import Any


def channel_json(channel_id: str = "1715000000.42", **over: Any) -> dict[str, Any]:
    """A channel as Asterisk 22 sends it for a PJSIP caller in Stasis."""
    data: dict[str, Any] = {
        "id": channel_id,
        "name": "PJSIP/caller-00000007",
        "state": "Ring",
        "protocol_id": "a84b4c76e66710@pc33.example.org",
        "caller": {"name": "Alice", "number": "+15551230001"},
        "connected": {"name": "", "number": ""},
        "accountcode": "",
        "dialplan": {
            "context": "callcontrol-inbound",
            "exten": "100",
            "priority": 1,
            "app_name": "Stasis",
            "app_data": "callcontrol,inbound,a84b4c76e66710@pc33.example.org",
        },
        "creationtime": "2024-05-06T10:15:30.123+0200",
        "language": "en",
    }
    data.update(over)
    return data


def event(kind: str, **fields: Any) -> dict[str, Any]:
    """An ARI event of type ``kind`` for the ``callcontrol`` application, with ``fields``."""
    return {
        "type": kind,
        "application": "callcontrol",
        "timestamp": "2024-05-06T08:15:31.250+0000",
        "asterisk_id": "02:42:ac:11:00:02",
        **fields,
    }
