"""The interaction record's routes on a fake backend: bad input gets 400 with a stable id
before the domain is asked; roles; paging links."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from callcontrol.api.auth import TokenStore
from callcontrol.api.server import build_app
from callcontrol.store.call_search import Cursor
from tests.unit.test_api import FakeBackend, auth


class PagedBackend(FakeBackend):
    async def find_calls(self, where: Any, limit: int, after: Any
                         ) -> tuple[list[dict[str, Any]], Any]:
        self.last_filter, self.last_after = where, after
        from datetime import UTC, datetime
        return [{"call_id": "c9"}], Cursor(datetime(2026, 1, 1, tzinfo=UTC), "c9")


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[Any]:
    tokens = TokenStore(tmp_path / "tokens.json")
    backend = PagedBackend()
    async with TestClient(TestServer(build_app(backend, tokens), host="127.0.0.1")) as c:
        c.tokens = {"sup": tokens.create("s", "supervisor"),
                    "alice": tokens.create("t", "agent", "alice"),
                    "bob": tokens.create("u", "agent", "bob")}
        c.backend = backend
        yield c


@pytest.mark.parametrize("query", [
    "caller=alice", "caller=", "agent=a%20b", "queue=..%2F", "outcome=won", "disposition=x1",
    "from=yesterday", "to=2026-01-01T00:00:00", "from=2026-01-02T00:00:00Z&to=2026-01-01T00:00:00Z",
    "limit=0", "cursor=%21%21", "colour=red",
])
async def test_bad_filters_are_400_naming_the_parameter(api: Any, query: str) -> None:
    resp = await api.get(f"/api/calls?{query}", headers=auth(api.tokens["sup"]))
    body = await resp.json()
    assert resp.status == 400 and body["error"]["id"] == "invalid_parameter", body
    assert body["error"]["details"]["parameter"] == query.split("=")[0]


async def test_filters_reach_the_backend_normalised_and_the_next_page_is_linked(api: Any
                                                                                ) -> None:
    resp = await api.get("/api/calls?caller=06%2012345678&outcome=completed&disposition=missing"
                         "&limit=1", headers=auth(api.tokens["sup"]))
    assert resp.status == 200
    where = api.backend.last_filter
    assert list(where.caller_forms) == ["+390612345678", "00390612345678", "0612345678"]
    assert (where.outcome, where.disposition) == ("completed", "missing")
    link = resp.links["next"]["url"]
    assert link.query["limit"] == "1" and link.query["caller"] == "06 12345678"
    resp = await api.get(str(link.relative()), headers=auth(api.tokens["sup"]))
    assert resp.status == 200 and api.backend.last_after.call_id == "c9"


async def test_the_customer_number_must_be_one(api: Any) -> None:
    sup = auth(api.tokens["sup"])
    for bad in ("abc", "123abc", "%2B", "0" * 70):
        resp = await api.get(f"/api/customers/{bad}/calls", headers=sup)
        assert resp.status == 400 and (await resp.json())["error"]["id"] == "invalid_number"
    resp = await api.get("/api/customers/0612345678/calls", headers=sup)
    assert resp.status == 200 and resp.headers["X-Customer-Number"] == "+390612345678"
    resp = await api.get("/api/customers/0612345678/calls", headers=auth(api.tokens["alice"]))
    assert resp.status == 403


async def test_a_disposition_body_is_checked_before_the_domain(api: Any) -> None:
    alice = auth(api.tokens["alice"])
    for body in ({}, {"code": 1}, {"code": "1a"}, {"code": "1", "note": 5},
                 {"code": "1", "extra": True}):
        resp = await api.post("/api/calls/c1/disposition", json=body, headers=alice)
        assert resp.status == 400 and (await resp.json())["error"]["id"] == "invalid_body"
    resp = await api.post("/api/calls/c1/disposition", json={"code": "1", "note": "ok"},
                          headers=alice)
    assert resp.status == 200 and (await resp.json())["by"] == "agent:alice"
    resp = await api.post("/api/calls/c1/disposition", json={"code": "1"},
                          headers=auth(api.tokens["bob"]))
    assert resp.status == 403
    resp = await api.post("/api/calls/zz/disposition", json={"code": "1"},
                          headers=auth(api.tokens["sup"]))
    assert resp.status == 404 and (await resp.json())["error"]["id"] == "call_not_found"


@pytest.mark.parametrize("recording_id", ["a%20b", "a%00", "%2E%2E", "x" * 129])
async def test_a_recording_id_that_cannot_be_one_is_400(api: Any, recording_id: str) -> None:
    resp = await api.get(f"/api/recordings/{recording_id}", headers=auth(api.tokens["sup"]))
    assert resp.status in (400, 404)
    if resp.status == 400:
        assert (await resp.json())["error"]["id"] == "invalid_recording_id"


async def test_an_unknown_recording_is_404_and_needs_a_token(api: Any) -> None:
    resp = await api.get("/api/recordings/r1", headers=auth(api.tokens["alice"]))
    assert resp.status == 404 and (await resp.json())["error"]["id"] == "recording_not_found"
    resp = await api.get("/api/recordings/r1")
    assert resp.status == 401
