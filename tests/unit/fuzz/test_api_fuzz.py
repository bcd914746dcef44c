"""Fuzzing the HTTP API (issue 11): the JSON body of every POST/PUT/PATCH route of the OpenAPI
document, and the query parameters, get a 2xx or 4xx JSON answer, never a 500 or a traceback,
each within :data:`BUDGET_S`.

Bodies are drawn from the route's request schema in the OpenAPI document (so most reach the
handler's deeper checks), from that shape with one field replaced or added, from random JSON
and from random bytes; every request goes with a random role's token. Brief by default
(:data:`EXAMPLES` per test, a fixed sequence: ``make test`` stays deterministic); set
``CALLCONTROL_FUZZ_EXAMPLES=5000`` for a longer, randomised run.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from callcontrol.api import server
from callcontrol.api.auth import TokenStore
from callcontrol.api.openapi import OPENAPI
from callcontrol.api.server import build_app
from callcontrol.config import OutboundAllow
from tests.unit.test_agents_api import AgentsBackend

KNOB = os.environ.get("CALLCONTROL_FUZZ_EXAMPLES")
EXAMPLES = int(KNOB) if KNOB else 40
BUDGET_S = 2.0
"""The longest one answer may take (the fake backend answers at once: this is the API's own
parsing and checking)."""
FUZZ = settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=not KNOB,
                suppress_health_check=list(HealthCheck))
PATH_VALUES = {"agent_id": "alice", "name": "billing", "account": "123456", "call_id": "c1",
               "recording_id": "r1", "number": "+390612345678"}
SCHEDULES = {"office", "support"}

CONTENT_TYPES = st.one_of(
    st.just("application/json"),
    st.sampled_from(["utf-8", "latin-1", "utf-16", "ascii", "nope", ""]).map(
        lambda c: f"application/json; charset={c}"),
    st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=30).map(
        lambda c: f"application/json; charset={c}"),
)
"""The body's declared type: mostly JSON, sometimes a charset Python does not know."""
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner,
                                                                max_size=4),
    max_leaves=20,
)


def from_schema(schema: dict[str, Any]) -> st.SearchStrategy[Any]:
    """Values of the OpenAPI schema subset the document uses."""
    if "enum" in schema:
        base: st.SearchStrategy[Any] = st.sampled_from(schema["enum"])
    elif schema.get("type") == "object":
        properties = {k: from_schema(v) for k, v in schema.get("properties", {}).items()}
        required = set(schema.get("required", ()))
        base = st.fixed_dictionaries(
            {k: v for k, v in properties.items() if k in required},
            optional={k: v for k, v in properties.items() if k not in required})
        extra = schema.get("additionalProperties")
        if isinstance(extra, dict):
            base = st.dictionaries(st.text(min_size=1, max_size=70), from_schema(extra),
                                   max_size=5)
    elif schema.get("type") == "string":
        if "pattern" in schema:
            base = st.from_regex(schema["pattern"], fullmatch=True)
        else:
            base = st.text(min_size=schema.get("minLength", 0),
                           max_size=schema.get("maxLength", 40))
    elif schema.get("type") == "integer":
        base = st.integers(schema.get("minimum"), schema.get("maximum"))
    elif schema.get("type") == "number":
        base = st.floats(schema.get("minimum"), schema.get("maximum"))
    elif schema.get("type") == "array":
        base = st.lists(from_schema(schema.get("items", {})), max_size=5)
    else:
        base = JSON
    return st.none() | base if schema.get("nullable") else base


def body_strategy(schema: dict[str, Any]) -> st.SearchStrategy[bytes]:
    """Encoded bodies: schema-shaped, one field replaced or added, random JSON, random bytes."""
    shaped = from_schema(schema)
    mutated = st.tuples(shaped, st.text(max_size=12), JSON).map(
        lambda t: {**t[0], t[1]: t[2]} if isinstance(t[0], dict) else t[0])
    replaced = st.tuples(shaped, JSON).map(
        lambda t: {**t[0], next(iter(t[0])): t[1]} if isinstance(t[0], dict) and t[0] else t[0])
    as_json = st.one_of(shaped, mutated, replaced, JSON).map(
        lambda v: json.dumps(v, allow_nan=True).encode())
    return st.one_of(as_json, st.binary(max_size=200))


def body_routes() -> Iterator[tuple[str, str, dict[str, Any]]]:
    """``(method, concrete path, body schema)`` of every route that takes a JSON body."""
    for path, ops in OPENAPI["paths"].items():
        for method, op in ops.items():
            if method in ("post", "put", "patch"):
                schema = (op.get("requestBody", {}).get("content", {})
                          .get("application/json", {}).get("schema", {}))
                concrete = re.sub(r"\{(\w+)\}", lambda m: PATH_VALUES[m.group(1)], path)
                yield method.upper(), concrete, schema


class Api:
    """One app on the fake backend, driven from Hypothesis' synchronous examples."""

    def __init__(self, tmp_path: Path) -> None:
        self.loop = asyncio.new_event_loop()
        tokens = TokenStore(tmp_path / "tokens.json")
        backend = AgentsBackend()
        backend.schedule_names = lambda: SCHEDULES  # type: ignore[method-assign]
        app = build_app(backend, tokens, outbound=OutboundAllow(agent=["+3906*"]),
                        demo_crm=True)
        self.client: TestClient[Any, Any] = TestClient(TestServer(app, host="127.0.0.1"),
                                                       loop=self.loop)
        self.loop.run_until_complete(self.client.start_server())
        self.tokens = {role: tokens.create(role, role, "alice" if role == "agent" else None)
                       for role in ("admin", "supervisor", "agent")}

    def close(self) -> None:
        self.loop.run_until_complete(self.client.close())
        self.loop.close()

    def request(self, method: str, path: str, role: str, *, data: bytes | None = None,
                params: dict[str, str] | None = None, content_type: str = "application/json",
                ) -> tuple[int, Any, float]:
        """``(status, json body, seconds)`` of one request."""

        async def go() -> tuple[int, Any]:
            async with self.client.request(
                method, path, data=data, params=params,
                headers={"Authorization": f"Bearer {self.tokens[role]}",
                         "Content-Type": content_type},
            ) as resp:
                assert resp.content_type == "application/json", (resp.status, resp.content_type)
                return resp.status, json.loads(await resp.read())

        start = time.monotonic()
        status, body = self.loop.run_until_complete(go())
        return status, body, time.monotonic() - start


@pytest.fixture
def api(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Api]:
    internal: list[tuple[Any, ...]] = []
    monkeypatch.setattr(server.log, "exception", lambda *a, **kw: internal.append((a, kw)))
    made = Api(tmp_path)
    try:
        yield made
    finally:
        made.close()
    assert internal == [], "a handler raised: the API logged a traceback"


def check_answer(status: int, body: Any, seconds: float, what: Any) -> None:
    """A 2xx or 4xx JSON answer within the budget; errors in the one error shape."""
    assert 200 <= status < 300 or 400 <= status < 500, (status, body, what)
    assert seconds < BUDGET_S, (seconds, what)
    if status >= 400:
        assert set(body) == {"error"} and set(body["error"]) == {"id", "message", "details"}, body
        assert isinstance(body["error"]["id"], str) and "Traceback" not in json.dumps(body)


ROUTES = list(body_routes())


def test_the_openapi_document_has_body_routes_to_fuzz() -> None:
    assert {(m, p) for m, p, _ in ROUTES} >= {
        ("POST", "/api/agents"), ("PATCH", "/api/agents/alice"),
        ("POST", "/api/agents/alice/transfer"), ("POST", "/api/schedules/billing/override"),
        ("POST", "/api/agents/alice/pause")}


@pytest.mark.parametrize(("method", "path", "schema"), ROUTES,
                         ids=[f"{m} {p}" for m, p, _ in ROUTES])
def test_json_bodies_get_a_2xx_or_4xx_json_answer(api: Api, method: str, path: str,
                                                  schema: dict[str, Any]) -> None:
    # one override route for a known schedule, so bodies reach its checks
    path = path.replace("/api/schedules/billing/", "/api/schedules/office/")

    @FUZZ
    @given(body=body_strategy(schema), role=st.sampled_from(["admin", "supervisor", "agent"]),
           content_type=CONTENT_TYPES)
    def one(body: bytes, role: str, content_type: str) -> None:
        status, answer, seconds = api.request(method, path, role, data=body,
                                              content_type=content_type)
        check_answer(status, answer, seconds, (method, path, content_type, body[:200]))

    one()


QUERY_ROUTES = [
    ("/api/calls", ["limit", "cursor", "caller", "agent", "queue", "outcome", "disposition",
                    "from", "to"]),
    ("/api/customers/+390612345678/calls", ["limit", "cursor"]),
    ("/api/queues/billing/stats", ["from", "to"]),
]


@pytest.mark.parametrize(("path", "names"), QUERY_ROUTES, ids=[p for p, _ in QUERY_ROUTES])
def test_query_parameters_get_a_2xx_or_4xx_json_answer(api: Api, path: str,
                                                       names: list[str]) -> None:
    values = st.one_of(st.text(max_size=40), st.integers().map(str),
                       st.datetimes().map(lambda d: d.isoformat() + "Z"))

    @FUZZ
    @given(params=st.fixed_dictionaries({}, optional=dict.fromkeys(names, values)))
    def one(params: dict[str, str]) -> None:
        status, answer, seconds = api.request("GET", path, "supervisor", params=params)
        check_answer(status, answer, seconds, (path, params))

    one()
