"""The asyncio side of ARI: REST requests with timeouts and the events WebSocket, kept alive.

:class:`AriClient` sends REST calls over a :class:`~callcontrol.ari.http.HttpPool` (keep-alive
HTTP/1.1 at about half of aiohttp's CPU per request) and owns one aiohttp session for the events
WebSocket and one listener task. The listener connects the events WebSocket for our Stasis
application, runs the ``on_connected`` callbacks (the app lists channels and bridges there and
reconciles), then hands every event, in order, to the event handlers. When the socket drops it
reconnects forever with capped exponential backoff and jitter. Credentials travel only in the
``Authorization`` header, never in a URL or a log line.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import re
from collections.abc import Awaitable, Callable, Sequence
from typing import Any
from urllib.parse import quote

import aiohttp

from callcontrol.ari.http import HttpPool, Response
from callcontrol.ari.protocol import (
    ApplicationReplaced,
    AriEvent,
    Request,
    error_for_status,
    filter_events,
    list_applications,
    parse_message,
)
from callcontrol.errors import PbxUnreachable, TelephonyError
from callcontrol.links import LinkState
from callcontrol.logging import get_logger

EventHandler = Callable[[AriEvent], Awaitable[None]]
ConnectedHandler = Callable[[], Awaitable[None]]

_log = get_logger("callcontrol.ari")


def backoff_delay(
    attempt: int, min_delay: float, max_delay: float, rng: random.Random | None = None
) -> float:
    """Seconds to wait before reconnect ``attempt`` (0-based): doubling from ``min_delay``,
    capped at ``max_delay``, with the upper half jittered so clients do not reconnect in step."""
    base = min(max_delay, min_delay * 2.0 ** min(attempt, 30))
    fraction: float = (rng or random).random()
    return base * (0.5 + fraction / 2)


def describe(exc: BaseException) -> str:
    """A short, secret-free description of a connection error."""
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class AriClient:
    """REST and events for one Stasis application on one Asterisk.

    Call :meth:`start` inside the running loop, :meth:`close` on shutdown. :attr:`link` tells
    ``/health`` whether the events socket is up. Event types in ``ignored_events`` are filtered
    out by Asterisk (the application's event filter, set at every connect): they cost parsing
    on both sides and their handlers would do nothing with them.
    """

    def __init__(
        self,
        url: str,
        user: str,
        password: str,
        app: str,
        request_timeout: float = 5.0,
        reconnect_max_delay: float = 2.0,
        *,
        reconnect_min_delay: float = 0.1,
        heartbeat: float = 5.0,
        ignored_events: Sequence[str] = (),
    ) -> None:
        self.app = app
        self._ignored_events = tuple(ignored_events)
        self.link = LinkState("ari")
        self._base = url.rstrip("/")
        self._auth = {"Authorization": aiohttp.encode_basic_auth(user, password)}
        self._request_timeout = request_timeout
        self._timeout = aiohttp.ClientTimeout(total=request_timeout)
        self._min_delay = reconnect_min_delay
        self._max_delay = reconnect_max_delay
        self._heartbeat = heartbeat
        self._event_handlers: list[EventHandler] = []
        self._connected_handlers: list[ConnectedHandler] = []
        self._session: aiohttp.ClientSession | None = None
        self._http: HttpPool | None = None
        self._listener: asyncio.Task[None] | None = None
        self._up = asyncio.Event()
        self._replaced = False

    def __repr__(self) -> str:
        return f"AriClient(url={self._base!r}, app={self.app!r})"

    def on_event(self, handler: EventHandler) -> None:
        """Await ``handler(event)`` for every event, in arrival order (errors are logged)."""
        self._event_handlers.append(handler)

    def on_connected(self, handler: ConnectedHandler) -> None:
        """Await ``handler()`` after every (re)connect, before that connection's events."""
        self._connected_handlers.append(handler)

    @property
    def replaced(self) -> bool:
        """Whether another connection took our application (we wait until it lets go)."""
        return self._replaced

    async def start(self) -> None:
        """Open the HTTP session and start the events listener (returns at once)."""
        if self._session is not None:
            raise RuntimeError("AriClient already started")
        self._http = HttpPool(self._base, self._auth)
        self._session = aiohttp.ClientSession(timeout=self._timeout)
        self._listener = asyncio.create_task(self._listen_forever(), name="ari-events")

    async def wait_connected(self) -> None:
        """Return once the events socket is up (wrap in ``asyncio.timeout`` to bound it)."""
        await self._up.wait()

    async def close(self) -> None:
        """Stop the listener and close the session."""
        if self._listener is not None:
            self._listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._listener
            self._listener = None
        if self._session is not None:
            await self._session.close()
            self._session = None
        if self._http is not None:
            self._http.close()
            self._http = None
        self._up.clear()
        self.link.mark_down("closed")

    async def request(self, request: Request) -> Any:
        """Send one REST call; return its decoded JSON (``None`` when it has no body).

        Raises :class:`PbxUnreachable` on timeouts and connection errors, and the named
        :class:`~callcontrol.errors.PbxRefused` subclass when Asterisk refuses.
        """
        response = await self._exchange(request)
        body = _decode(response.body)
        if response.status >= 400:
            raise error_for_status(response.status, body)
        return body

    async def send(self, request: Request) -> None:
        """Send one REST call whose answer is not used (a command): errors as
        :meth:`request`; a successful answer's body is not decoded."""
        response = await self._exchange(request)
        if response.status >= 400:
            raise error_for_status(response.status, _decode(response.body))

    async def _exchange(self, request: Request) -> Response:
        if self._http is None:
            raise PbxUnreachable("ARI client not started")
        target = "/ari" + request.path
        if request.params:
            target += "?" + "&".join(f"{_escape(k)}={_escape(v)}"
                                     for k, v in request.params.items())
        body = None if request.json is None else json.dumps(request.json).encode()
        try:
            return await self._http.request(request.method, target, body, self._request_timeout)
        except (TimeoutError, OSError) as exc:
            raise PbxUnreachable(f"{request.method} {request.path}: {describe(exc)}") from exc

    def _events_url(self) -> str:
        base = self._base
        if base.startswith("http"):
            base = "ws" + base[len("http") :]
        return f"{base}/ari/events"

    async def _listen_forever(self) -> None:
        attempt = 0
        while True:
            last_up = self.link.last_up
            try:
                await self._listen_once()
            except (aiohttp.ClientError, TimeoutError, OSError) as exc:
                self._went_down(describe(exc))
            if self.link.last_up is not last_up:
                attempt = 0
            if self._replaced:
                await self._wait_until_app_free()
                attempt = 0
            delay = backoff_delay(attempt, self._min_delay, self._max_delay)
            attempt += 1
            await asyncio.sleep(delay)

    async def _listen_once(self) -> None:
        assert self._session is not None
        async with self._session.ws_connect(
            self._events_url(),
            params={"app": self.app, "subscribeAll": "false"},
            headers=self._auth,
            heartbeat=self._heartbeat,
        ) as ws:
            self._replaced = False
            self.link.mark_up()
            self._up.set()
            _log.info("ari_connected", app=self.app, reconnects=self.link.reconnects)
            if self._ignored_events:
                await self._filter_events()
            for connected in list(self._connected_handlers):
                await self._guarded(connected())
            async for message in ws:
                if message.type is aiohttp.WSMsgType.TEXT:
                    event = parse_message(message.data)
                    await self._dispatch(event)
                    if isinstance(event, ApplicationReplaced):
                        self._replaced = True
                        break
                elif message.type is aiohttp.WSMsgType.ERROR:
                    break
            reason = "application replaced" if self._replaced else f"closed ({ws.close_code})"
        self._went_down(reason)

    async def _filter_events(self) -> None:
        """Ask Asterisk not to send the ignored event types; without the filter (an older
        Asterisk refuses it) they arrive and are dispatched like any other."""
        try:
            await self.request(filter_events(self.app, self._ignored_events))
        except TelephonyError as exc:
            _log.warning("ari_event_filter_failed", error=describe(exc))

    def _went_down(self, reason: str) -> None:
        if self.link.up:
            _log.warning("ari_disconnected", reason=reason)
        self._up.clear()
        self.link.mark_down(reason)

    async def _wait_until_app_free(self) -> None:
        """Another connection serves our app: poll until it is gone rather than fight it."""
        _log.error("ari_application_replaced", app=self.app)
        while True:
            await asyncio.sleep(self._max_delay)
            try:
                apps = await self.request(list_applications())
            except PbxUnreachable:
                return
            except Exception as exc:  # a refusal here must not end the listener
                _log.warning("ari_application_poll_failed", error=describe(exc))
                continue
            names = {a.get("name") for a in apps} if isinstance(apps, list) else set()
            if self.app not in names:
                return

    async def _dispatch(self, event: AriEvent) -> None:
        for handler in list(self._event_handlers):
            await self._guarded(handler(event))

    async def _guarded(self, call: Awaitable[None]) -> None:
        try:
            await call
        except asyncio.CancelledError:
            raise
        except Exception:
            _log.exception("ari_handler_failed")


# query characters sent as they are (most ids and values): the rest is %-escaped ("+" too:
# Asterisk reads it as a space)
_PLAIN_QUERY = re.compile(r"[A-Za-z0-9_.~:,-]*")


def _escape(value: str) -> str:
    return value if _PLAIN_QUERY.fullmatch(value) else quote(value, safe=":,")


def _decode(body: bytes) -> Any:
    """An answer's JSON; its text when it is not JSON; ``None`` when it is empty."""
    if not body:
        return None
    try:
        return json.loads(body)
    except ValueError:
        return body.decode("utf-8", "replace")
