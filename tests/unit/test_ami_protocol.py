"""The pure AMI layer: events typed from header mappings, answers read, actions prepared."""

from __future__ import annotations

import pytest

from callcontrol.ami import protocol as ami


def test_contact_status() -> None:
    ev = ami.parse_ami_event({
        "Event": "ContactStatus", "Privilege": "system,all",
        "URI": "sip:agent-a1@127.0.0.1:5070", "ContactStatus": "Reachable",
        "AOR": "agent-a1", "EndpointName": "agent-a1", "RoundtripUsec": "1532",
    })
    assert ev == ami.ContactStatus(name="ContactStatus", endpoint="agent-a1", aor="agent-a1",
                                   status="Reachable", uri="sip:agent-a1@127.0.0.1:5070",
                                   roundtrip_usec=1532)
    removed = ami.parse_ami_event({"event": "ContactStatus", "aor": "a2",
                                   "contactstatus": "Removed", "roundtripusec": "N/A"})
    assert isinstance(removed, ami.ContactStatus)
    assert (removed.status, removed.endpoint, removed.roundtrip_usec) == ("Removed", "", None)


def test_device_state_peer_status_fully_booted() -> None:
    assert ami.parse_ami_event({"Event": "DeviceStateChange", "Device": "PJSIP/agent-a1",
                                "State": "INUSE"}) == \
        ami.DeviceStateChange(name="DeviceStateChange", device="PJSIP/agent-a1", state="INUSE")
    assert ami.parse_ami_event({"Event": "PeerStatus", "ChannelType": "PJSIP",
                                "Peer": "PJSIP/agent-a1", "PeerStatus": "Reachable"}) == \
        ami.PeerStatus(name="PeerStatus", channel_type="PJSIP", peer="PJSIP/agent-a1",
                       status="Reachable")
    assert ami.parse_ami_event({"Event": "FullyBooted", "Status": "Fully Booted",
                                "Uptime": "12", "LastReload": "12"}) == \
        ami.FullyBooted(name="FullyBooted", status="Fully Booted", uptime_s=12)


def test_unknown_and_malformed_events() -> None:
    ev = ami.parse_ami_event({"Event": "Newchannel", "Channel": "PJSIP/x-1",
                              "ChanVariable": ["A=1", "B=2"]})
    assert isinstance(ev, ami.UnknownAmiEvent)
    assert ev.name == "Newchannel" and ev.headers["chanvariable"] == "A=1"
    # A known name without its key headers is not forced into a typed event.
    assert isinstance(ami.parse_ami_event({"Event": "DeviceStateChange"}), ami.UnknownAmiEvent)


def test_answers() -> None:
    assert ami.is_error({"Response": "Error", "Message": "Permission denied"})
    assert ami.error_message({"Response": "Error", "Message": "Permission denied"}) == \
        "Permission denied"
    assert not ami.is_error({"Response": "Success", "Ping": "Pong"})
    assert not ami.is_error({"Event": "ContactList"})


def test_originate_always_carries_async() -> None:
    assert ami.prepare_action({"Action": "Originate", "Channel": "PJSIP/a1"})["Async"] == "true"
    kept = ami.prepare_action({"action": "originate", "async": "false"})
    assert kept == {"action": "originate", "async": "false"}
    assert "Async" not in ami.prepare_action({"Action": "Ping"})
    with pytest.raises(ValueError):
        ami.prepare_action({"Channel": "x"})


def test_contact_statuses_take_the_best_contact_per_endpoint() -> None:
    messages = [
        {"Response": "Success", "EventList": "start", "Message": "A listing of Contacts follows"},
        {"Event": "ContactList", "ObjectType": "contact",
         "ObjectName": "agent-a1;@0f1e", "Endpoint": "agent-a1", "Status": "Unreachable"},
        {"Event": "ContactList", "ObjectName": "agent-a1;@77aa", "Endpoint": "agent-a1",
         "Status": "Reachable"},
        {"Event": "ContactList", "ObjectName": "agent-a2;@1234", "Endpoint": "agent-a2",
         "Status": "Unreachable"},
        {"Event": "ContactList", "ObjectName": "agent-a3;@1234", "Status": "NonQualified"},
        {"Event": "ContactListComplete", "EventList": "Complete", "ListItems": "4"},
    ]
    assert ami.contact_statuses(messages) == {
        "agent-a1": "Reachable", "agent-a2": "Unreachable", "agent-a3": "NonQualified",
    }
