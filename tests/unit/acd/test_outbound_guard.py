"""The toll-fraud guard of a ``dial`` to an outside number (acd.service.outbound_refusal): a
flow's number must match ``security.outbound_allow.flows``; a blind transfer's was checked by
the API against the token role's patterns."""

from __future__ import annotations

from typing import Any

from callcontrol.acd.service import outbound_refusal
from callcontrol.callctx import DialRequest
from callcontrol.config import Config


def _config(**allow: Any) -> Config:
    return Config.model_validate({
        "asterisk": {"ari": {"password": {"env": "X"}}, "ami": {"password": {"env": "X"}}},
        "security": {"outbound_allow": allow},
    })


def test_by_default_a_flow_dials_no_outside_number() -> None:
    reason = outbound_refusal(_config(), DialRequest(to="number:+390612345678"))
    assert reason == "+390612345678 is not in security.outbound_allow.flows"


def test_a_flow_dials_numbers_matching_its_patterns_only() -> None:
    config = _config(flows=["+39800??????", "+15550100"], agent=["+881*"])
    assert outbound_refusal(config, DialRequest(to="number:+39800123456")) is None
    assert outbound_refusal(config, DialRequest(to="number:+15550100")) is None
    for number in ("+3980012345", "+881612345678", "+15550101", "+39800123456\n"):
        assert outbound_refusal(config, DialRequest(to=f"number:{number}")) is not None, number


def test_a_transfer_was_checked_by_the_api() -> None:
    request = DialRequest(to="number:+390612345678", transfer=True)
    assert outbound_refusal(_config(), request) is None
