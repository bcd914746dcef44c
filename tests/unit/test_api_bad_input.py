"""The HTTP API against careless and hostile input (issue 11): every bad request is a 4xx JSON
error ``{error: {id, message, details}}``, never a 500; schedule overrides are bounded; the
toll-fraud guard refuses transfers to numbers outside the role's patterns; the demo CRM is off
unless configured, and then answers this machine only."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from unittest import mock

import pytest
from aiohttp.test_utils import TestClient, TestServer, make_mocked_request

from callcontrol.api import schedules_api
from callcontrol.api.auth import TokenStore
from callcontrol.api.context import BACKEND, MAX_BODY_BYTES
from callcontrol.api.openapi import OPENAPI
from callcontrol.api.server import build_app, demo_crm
from callcontrol.config import OutboundAllow, number_matches
from callcontrol.errors import ApiError
from tests.unit.test_agents_api import AgentsBackend

NESTED = "[" * 30000 + "]" * 30000
POST_ROUTES = [
    "/api/agents", "/api/agents/alice/pause", "/api/agents/alice/transfer",
    "/api/schedules/office/override",
]


class CrmBackend(AgentsBackend):
    def crm_customer(self, account: str) -> dict[str, Any] | None:
        return {"account": account} if account == "123456" else None


async def _client(tmp_path: Path, **options: Any) -> TestClient[Any, Any]:
    tokens = TokenStore(tmp_path / "tokens.json")
    client: TestClient[Any, Any] = TestClient(TestServer(
        build_app(CrmBackend(), tokens, **options), host="127.0.0.1"))
    await client.start_server()
    client.headers = {  # type: ignore[attr-defined]
        role: {"Authorization": f"Bearer {tokens.create(role, role, agent)}"}
        for role, agent in (("admin", None), ("supervisor", None), ("agent", "alice"))}
    return client


@pytest.fixture
async def client(tmp_path: Path) -> Any:
    c = await _client(tmp_path, outbound=OutboundAllow(agent=["+3906*"],
                                                       supervisor=["+39??12345678"]))
    yield c
    await c.close()


async def error(resp: Any, status: int, error_id: str | None = None) -> dict[str, Any]:
    """The answer's error, after checking its status (and id)."""
    assert resp.status == status, await resp.text()
    body = await resp.json()
    assert set(body["error"]) == {"id", "message", "details"}, body
    if error_id is not None:
        assert body["error"]["id"] == error_id, body
    return body["error"]  # type: ignore[no-any-return]


# '²' (superscript two), Arabic-Indic 3 and 10: str.isdigit() takes them, int() not always
@pytest.mark.parametrize("limit", ["\u00b2", "\u0663", "\u0661\u0660", "0", "1001", "-1", "1e3",
                                   "", "99999999"])
async def test_a_limit_that_is_not_ascii_digits_in_range_is_400(client: Any, limit: str) -> None:
    resp = await client.get("/api/calls", params={"limit": limit},
                            headers=client.headers["admin"])
    await error(resp, 400, "invalid_parameter")


@pytest.mark.parametrize("path", POST_ROUTES)
async def test_a_body_nested_30000_deep_is_400(client: Any, path: str) -> None:
    resp = await client.post(path, data=NESTED, headers=client.headers["admin"])
    await error(resp, 400, "invalid_json")
    resp = await client.post(path, data='{"a":' * 40 + "1" + "}" * 40,
                             headers=client.headers["admin"])
    assert (await error(resp, 400, "invalid_json"))["details"] == {"max_depth": 16}


@pytest.mark.parametrize("charset", ["nope", "utf-16", "utf-32-be"])
async def test_a_body_in_an_unknown_or_wrong_charset_is_400(client: Any, charset: str) -> None:
    resp = await client.post("/api/agents/alice/pause", data=b'{"reason": "break"}',
                             headers={**client.headers["admin"],
                                      "Content-Type": f"application/json; charset={charset}"})
    await error(resp, 400, "invalid_json")


@pytest.mark.parametrize("path", POST_ROUTES)
async def test_a_body_over_the_size_limit_is_413(client: Any, path: str) -> None:
    big = '{"reason": "' + "x" * MAX_BODY_BYTES + '"}'
    resp = await client.post(path, data=big, headers=client.headers["admin"])
    assert (await error(resp, 413, "too_large"))["details"] == {"max_bytes": MAX_BODY_BYTES}


@pytest.mark.parametrize(("path", "body"), [
    ("/api/agents", {"id": 1, "name": "x", "endpoint": "e", "password": "p" * 9}),
    ("/api/agents", {"id": "b", "name": "x", "endpoint": "e", "password": "p" * 9,
                     "queues": ["billing"] * 101}),
    ("/api/agents", {"id": "b", "name": "x", "endpoint": "e", "password": "p" * 9,
                     "wrap_up": float("nan")}),
    ("/api/agents", {"id": "b", "name": "x", "endpoint": "e", "password": "p" * 9,
                     "skills": {"a": 10**40}}),
    ("/api/agents/alice/pause", {"reason": 5}),
    ("/api/agents/alice/pause", {"reason": "r" * 65}),
    ("/api/agents/alice/transfer", {"to": ["queue:billing"]}),
    ("/api/agents/alice/transfer", {"to": "number:+390612345678\n"}),
    ("/api/agents/alice/transfer", {"to": "queue:" + "q" * 200}),
    ("/api/schedules/office/override", {"state": "closed", "until": 5}),
    ("/api/schedules/office/override", {"state": "closed", "reason": "r" * 201}),
    ("/api/schedules/office/override", {"state": "closed", "until": "2001-01-01T00:00:00Z"}),
    ("/api/schedules/office/override", {"state": "closed", "extra": 1}),
    ("/api/schedules/office/override", ["closed"]),
])
async def test_wrong_types_lengths_and_unknown_fields_are_400(client: Any, path: str,
                                                              body: Any) -> None:
    resp = await client.post(path, json=body, headers=client.headers["admin"])
    await error(resp, 400, "invalid_body")


@pytest.mark.parametrize("query", ["to=0001-01-01T00:00:00Z", "from=9999-12-31T23:59:59Z",
                                   "to=\uff12\uff10\uff12\uff16-01-01T00:00:00Z"])
async def test_queue_stats_times_out_of_range_are_400(client: Any, query: str) -> None:
    resp = await client.get(f"/api/queues/billing/stats?{query}",
                            headers=client.headers["supervisor"])
    await error(resp, 400, "invalid_parameter")


async def test_overrides_only_for_known_schedules_and_at_most_max(
    client: Any, monkeypatch: pytest.MonkeyPatch,
) -> None:
    sup = client.headers["supervisor"]
    resp = await client.post("/api/schedules/nowhere/override", json={"state": "closed"},
                             headers=sup)
    assert (await error(resp, 404, "schedule_not_found"))["details"] == {"schedule": "nowhere"}
    monkeypatch.setattr(schedules_api, "MAX_OVERRIDES", 2)
    for name in ("office", "support"):
        resp = await client.post(f"/api/schedules/{name}/override", json={"state": "closed"},
                                 headers=sup)
        assert resp.status == 200
    resp = await client.post("/api/schedules/holidays/override", json={"state": "open"},
                             headers=sup)
    await error(resp, 409, "too_many_overrides")
    resp = await client.post("/api/schedules/office/override", json={"state": "open"},
                             headers=sup)  # replacing an active one stays possible
    assert resp.status == 200


async def test_transfer_to_an_outside_number_needs_a_pattern_of_the_role(client: Any) -> None:
    resp = await client.post("/api/agents/alice/transfer", json={"to": "number:+881612345678"},
                             headers=client.headers["agent"])
    details = (await error(resp, 403, "outbound_not_allowed"))["details"]
    assert details == {"to": "number:+881612345678", "role": "agent",
                       "setting": "security.outbound_allow.agent"}
    assert client.server.app[BACKEND].controls == []  # nothing reached the ACD
    ok = {"agent": ["+390612345678"], "supervisor": ["+390612345678", "+394412345678"],
          "admin": ["+390612345678", "+394412345678"]}
    refused = {"agent": ["+394412345678", "+3907123"], "supervisor": ["+3944123456789"],
               "admin": ["+15550100"]}
    for role, numbers in ok.items():
        for number in numbers:
            resp = await client.post("/api/agents/alice/transfer", json={"to": f"number:{number}"},
                                     headers=client.headers[role])
            assert resp.status == 200, (role, number, await resp.text())
    for role, numbers in refused.items():
        for number in numbers:
            resp = await client.post("/api/agents/alice/transfer", json={"to": f"number:{number}"},
                                     headers=client.headers[role])
            await error(resp, 403, "outbound_not_allowed")


async def test_by_default_no_role_may_transfer_outside(tmp_path: Path) -> None:
    client = await _client(tmp_path)
    try:
        for role in ("agent", "supervisor", "admin"):
            resp = await client.post("/api/agents/alice/transfer",
                                     json={"to": "number:+390612345678"},
                                     headers=client.headers[role])  # type: ignore[attr-defined]
            await error(resp, 403, "outbound_not_allowed")
    finally:
        await client.close()


def test_number_patterns() -> None:
    assert number_matches("+3906*", "+3906") and number_matches("+3906*", "+390612345678")
    assert not number_matches("+3906*", "+3916") and not number_matches("+3906*", "+881")
    assert number_matches("+39??", "+3912") and not number_matches("+39??", "+391")
    assert number_matches("+*", "+1") and not number_matches("+*", "1")
    assert not number_matches("+3906*", "+3906\n") and not number_matches("+3906*", "+3906 1")


async def test_demo_crm_is_off_by_default(tmp_path: Path) -> None:
    client = await _client(tmp_path)
    try:
        resp = await client.get("/demo/crm/customers/123456")
        await error(resp, 404, "not_found")
    finally:
        await client.close()


async def test_demo_crm_when_on_answers_this_machine_only(tmp_path: Path) -> None:
    client = await _client(tmp_path, demo_crm=True)
    try:
        resp = await client.get("/demo/crm/customers/123456")
        assert resp.status == 200 and (await resp.json())["account"] == "123456"
        app = client.server.app
    finally:
        await client.close()
    transport = mock.Mock()
    transport.get_extra_info.side_effect = lambda name, default=None: (
        ("192.0.2.7", 40000) if name == "peername" else default)
    request = make_mocked_request("GET", "/demo/crm/customers/123456",
                                  match_info={"account": "123456"}, app=app,
                                  transport=transport)
    with pytest.raises(ApiError) as refused:
        await demo_crm(request)
    assert (refused.value.status, refused.value.error_id) == (403, "forbidden")


def test_the_openapi_document_names_these_errors_and_limits() -> None:
    paths = OPENAPI["paths"]
    for path, ops in paths.items():
        for method, op in ops.items():
            if "requestBody" in op:
                assert {"400", "413"} <= set(op["responses"]), (method, path)
    override = paths["/api/schedules/{name}/override"]["post"]
    assert {"404", "409"} <= set(override["responses"])
    body = override["requestBody"]["content"]["application/json"]["schema"]
    assert body["properties"]["reason"]["maxLength"] == schedules_api.MAX_REASON
    transfer = paths["/api/agents/{agent_id}/transfer"]["post"]
    assert "outbound_not_allowed" in transfer["summary"] and "403" in transfer["responses"]
    assert {"403", "404"} <= set(paths["/demo/crm/customers/{account}"]["get"]["responses"])
