"""The ``http`` step: render the request in the sandbox, check the host, call, judge the answer.

- Only addresses on the allowlist (config ``flows.http_allow_hosts``) are called; any other is
  refused without a connection. An entry is ``HOST`` or ``HOST:PORT`` (``*.example.com``
  matches subdomains, ``[::1]:8080`` an IPv6 address): without a port only the scheme's default
  port (80, 443) is allowed, so allowing ``127.0.0.1`` does not open Asterisk's ARI on
  ``127.0.0.1:8088``.
- The URL's ``{{ }}`` values are URL-encoded (``| safe`` keeps a base URL as written); headers
  and string values of the JSON body are templates; ``{{ secrets.X }}`` is allowed anywhere.
  The parts computed from secrets are in :attr:`HttpRequest.secret_parts` for the call's
  masker; :meth:`HttpRequest.describe` gives the timeline the method, the URL without its
  ``user:password@`` and the header names only.
- A 2xx answer with a JSON body is a success (body saved); anything else is an error: a
  timeout, a connection error, a non-2xx status, a body that is not JSON (an empty body too),
  a body over 1 MiB, JSON nested deeper than :data:`MAX_JSON_DEPTH`. :class:`HttpOutcome`
  carries ``status`` (None when there was no answer) and ``ms`` either way.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import aiohttp

from callcontrol.flows.expressions import Evaluation, Sandbox

MAX_BODY = 1024 * 1024
MAX_JSON_DEPTH = 64
DEFAULT_PORTS = {"http": 80, "https": 443}


@dataclass(frozen=True)
class HttpRequest:
    """A rendered request, ready to send."""

    method: str
    url: str
    headers: Mapping[str, str] = field(default_factory=dict)
    body: Any = None
    timeout: float = 5.0
    missing: tuple[str, ...] = ()
    secret_parts: tuple[str, ...] = ()

    @property
    def rendered(self) -> Evaluation:
        """What rendering noted: the missing names and the parts derived from secrets."""
        return Evaluation(None, self.missing, self.secret_parts)

    def describe(self) -> dict[str, Any]:
        """The request for the timeline: method, URL without credentials, header names (the
        caller masks what :attr:`secret_parts` names)."""
        parts = urlsplit(self.url)
        netloc = parts.netloc.rpartition("@")[2]
        return {
            "method": self.method,
            "url": urlunsplit(parts._replace(netloc=netloc)),
            "headers": sorted(self.headers),
        }


@dataclass(frozen=True)
class HttpOutcome:
    """The result of an http step: ``ok`` takes ``next``, otherwise ``error``."""

    ok: bool
    status: int | None
    ms: int
    body: Any = None
    error: str = ""


@dataclass
class _Renderer:
    sandbox: Sandbox
    variables: Mapping[str, Any]
    tainted: Collection[str]
    missing: list[str] = field(default_factory=list)
    secret_parts: list[str] = field(default_factory=list)

    def text(self, template: str, *, url: bool = False) -> str:
        result = self.sandbox.render(
            template, self.variables, url_encode=url, tainted=self.tainted
        )
        self.missing.extend(result.missing)
        self.secret_parts.extend(result.secret_parts)
        return str(result.value)

    def json(self, value: Any) -> Any:
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, Mapping):
            return {k: self.json(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self.json(v) for v in value]
        return value


def render_request(
    sandbox: Sandbox,
    variables: Mapping[str, Any],
    *,
    method: str,
    url: str,
    headers: Mapping[str, str] | None = None,
    body: Any = None,
    timeout: float = 5.0,
    tainted: Collection[str] = (),
) -> HttpRequest:
    """Render an http step's templates (``tainted``: variables set from secrets); raise
    :class:`~.expressions.ExpressionError`."""
    render = _Renderer(sandbox, variables, tainted)
    rendered_url = render.text(url, url=True)
    rendered_headers = {name: render.text(template) for name, template in (headers or {}).items()}
    rendered_body = render.json(body) if body is not None else None
    return HttpRequest(
        method.upper(),
        rendered_url,
        rendered_headers,
        rendered_body,
        timeout,
        tuple(render.missing),
        tuple(render.secret_parts),
    )


def _host_port(url: str) -> tuple[str, int | None]:
    """The host (lower case) and port of ``url`` (the scheme's default when it has none);
    ``("", None)`` for anything that is not http(s) with a host and a valid port."""
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        return "", None
    host = (parts.hostname or "").lower()
    if parts.scheme not in DEFAULT_PORTS or not host:
        return "", None
    return host, port if port is not None else DEFAULT_PORTS[parts.scheme]


def host_allowed(url: str, allow_hosts: Sequence[str]) -> bool:
    """True when ``url`` is http(s) and its host and port are on the allowlist (an entry
    without a port allows the scheme's default port only)."""
    host, port = _host_port(url)
    if not host:
        return False
    for entry in allow_hosts:
        try:
            allowed = urlsplit(f"//{entry}")
            allowed_port = allowed.port
        except ValueError:
            continue
        pattern = (allowed.hostname or "").lower()
        if allowed_port is None and port != DEFAULT_PORTS[urlsplit(url).scheme]:
            continue
        if allowed_port is not None and port != allowed_port:
            continue
        if host == pattern or (pattern.startswith("*.") and host.endswith(pattern[1:])):
            return True
    return False


def _depth_problem(value: Any) -> str | None:
    """Why a parsed JSON answer is refused for its nesting (None when it is not)."""
    level: list[Any] = [value] if isinstance(value, dict | list) else []
    for _ in range(MAX_JSON_DEPTH):
        level = [
            child
            for item in level
            for child in (item.values() if isinstance(item, dict) else item)
            if isinstance(child, dict | list)
        ]
    return f"answer nested deeper than {MAX_JSON_DEPTH} levels" if level else None


def parse_answer(raw: bytes) -> tuple[Any, str]:
    """The JSON answer of an http step and ``""``, or ``None`` and why it is refused."""
    try:
        body = json.loads(raw)
    except RecursionError:
        return None, f"answer nested deeper than {MAX_JSON_DEPTH} levels"
    except ValueError:
        return None, "answer is not JSON"
    problem = _depth_problem(body)
    return (None, problem) if problem else (body, "")


class HttpStepClient:
    """Sends http steps' requests through one shared aiohttp session (created on first use)."""

    def __init__(self, allow_hosts: Sequence[str]) -> None:
        self.allow_hosts = list(allow_hosts)
        self._session: aiohttp.ClientSession | None = None

    async def close(self) -> None:
        """Close the session (the app calls this on shutdown)."""
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def send(self, request: HttpRequest) -> HttpOutcome:
        """Send the request and judge the answer (never raises for network or HTTP errors)."""
        started = time.monotonic()

        def elapsed() -> int:
            return round((time.monotonic() - started) * 1000)

        if not host_allowed(request.url, self.allow_hosts):
            host, port = _host_port(request.url)
            where = f"{host}:{port}" if host else "this URL"
            return HttpOutcome(False, None, 0, error=f"{where} is not on the allowlist")
        if self._session is None:
            self._session = aiohttp.ClientSession()
        try:
            async with asyncio.timeout(request.timeout):
                async with self._session.request(
                    request.method,
                    request.url,
                    headers=dict(request.headers),
                    json=request.body,
                    allow_redirects=False,
                ) as response:
                    raw = await response.content.read(MAX_BODY + 1)
                    status = response.status
        except TimeoutError:
            return HttpOutcome(False, None, elapsed(), error=f"timeout after {request.timeout}s")
        except aiohttp.ClientError as exc:
            return HttpOutcome(False, None, elapsed(), error=f"{type(exc).__name__}: {exc}")
        ms = elapsed()
        if not 200 <= status < 300:
            return HttpOutcome(False, status, ms, error=f"HTTP {status}")
        if len(raw) > MAX_BODY:
            return HttpOutcome(False, status, ms, error="answer body over 1 MiB")
        body, problem = parse_answer(raw)
        if problem:
            return HttpOutcome(False, status, ms, error=problem)
        return HttpOutcome(True, status, ms, body=body)
