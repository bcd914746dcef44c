"""The ``http`` step: render the request in the sandbox, check the host, call, judge the answer.

- Only hosts on the allowlist (config ``flows.http_allow_hosts``; ``*.example.com`` matches
  subdomains) are called; any other is refused without a connection.
- The URL's ``{{ }}`` values are URL-encoded (``| safe`` keeps a base URL as written); headers
  and string values of the JSON body are templates; ``{{ secrets.X }}`` is allowed anywhere and
  :meth:`HttpRequest.describe` masks secret values for the timeline.
- A 2xx answer with a JSON body is a success (body saved); anything else is an error: a
  timeout, a connection error, a non-2xx status, a body that is not JSON (an empty body too),
  a body over 1 MiB. :class:`HttpOutcome` carries ``status`` (None when there was no answer)
  and ``ms`` either way.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import aiohttp

from callcontrol.flows.expressions import Sandbox

MAX_BODY = 1024 * 1024


@dataclass(frozen=True)
class HttpRequest:
    """A rendered request, ready to send."""

    method: str
    url: str
    headers: Mapping[str, str] = field(default_factory=dict)
    body: Any = None
    timeout: float = 5.0
    missing: tuple[str, ...] = ()

    def describe(self, sandbox: Sandbox) -> dict[str, Any]:
        """The request for the timeline: method and URL, secrets masked, header values hidden
        when they carry a secret."""
        return {
            "method": self.method,
            "url": sandbox.mask(self.url),
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


def _render_json(
    value: Any, sandbox: Sandbox, variables: Mapping[str, Any], missing: list[str]
) -> Any:
    if isinstance(value, str):
        result = sandbox.render(value, variables)
        missing.extend(result.missing)
        return result.value
    if isinstance(value, Mapping):
        return {k: _render_json(v, sandbox, variables, missing) for k, v in value.items()}
    if isinstance(value, list):
        return [_render_json(v, sandbox, variables, missing) for v in value]
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
) -> HttpRequest:
    """Render an http step's templates; raise :class:`~.expressions.ExpressionError`."""
    missing: list[str] = []
    rendered_url = sandbox.render(url, variables, url_encode=True)
    missing.extend(rendered_url.missing)
    rendered_headers: dict[str, str] = {}
    for name, template in (headers or {}).items():
        value = sandbox.render(template, variables)
        missing.extend(value.missing)
        rendered_headers[name] = value.value
    rendered_body = _render_json(body, sandbox, variables, missing) if body is not None else None
    return HttpRequest(
        method.upper(), rendered_url.value, rendered_headers, rendered_body, timeout, tuple(missing)
    )


def host_allowed(url: str, allow_hosts: Sequence[str]) -> bool:
    """True when ``url`` is http(s) and its host is on the allowlist."""
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    if parts.scheme not in ("http", "https") or not host:
        return False
    for allowed in allow_hosts:
        allowed = allowed.lower()
        if host == allowed or (allowed.startswith("*.") and host.endswith(allowed[1:])):
            return True
    return False


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
            host = urlsplit(request.url).hostname or request.url
            return HttpOutcome(False, None, 0, error=f"host {host!r} is not on the allowlist")
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
        try:
            body = json.loads(raw)
        except ValueError:
            return HttpOutcome(False, status, ms, error="answer is not JSON")
        return HttpOutcome(True, status, ms, body=body)
