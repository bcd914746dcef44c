"""The asyncio side of AMI: panoramisk 1.4 behind a small, safer wrapper.

What the wrapper adds to panoramisk:

- every action has a timeout (``send_action`` has none) and fails fast while the link is down;
- events go through a queue to one owned dispatcher task that awaits each subscriber, guarded:
  a subscriber that raises is logged, it never kills the connection;
- ``Originate`` is listed in panoramisk's forgettable actions, so one pending at a disconnect is
  never placed a second time after the reconnect, and it always carries an ``Async`` header;
- a watchdog pings every ``ping_interval`` seconds and forces a reconnect when no answer comes
  within ``action_timeout`` (panoramisk's own pinger never reads the replies);
- :attr:`AmiClient.link` records the link's health for ``/health``.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from panoramisk import Manager
from panoramisk.actions import Action

from callcontrol.ami.protocol import (
    AmiEvent,
    contact_statuses,
    error_message,
    is_error,
    normalize,
    parse_ami_event,
    prepare_action,
)
from callcontrol.errors import PbxRefused, PbxUnreachable
from callcontrol.links import LinkState
from callcontrol.logging import get_logger

AmiSubscriber = Callable[[AmiEvent], Awaitable[None]]
AmiConnected = Callable[[], Awaitable[None]]

_log = get_logger("callcontrol.ami")

# Actions panoramisk must not re-send after a reconnect.
_FORGETTABLE = ("ping", "login", "logoff", "originate")
# panoramisk's own pinger is replaced by the watchdog: push it out of the way.
_NO_PINGER = 24 * 3600


class _LoggedIn(AmiEvent):
    """Queued at every login so the ``on_connected`` handlers run in the dispatcher, in order
    with the events of that connection."""


class _Manager(Manager):  # type: ignore[misc]
    """panoramisk's Manager that stops reconnecting once closed."""

    closing = False

    def connect(self, *args: Any, **kwargs: Any) -> Any:
        if self.closing:
            return None
        return super().connect(*args, **kwargs)


class AmiClient:
    """One manager session to Asterisk, reconnected by panoramisk, watched by us.

    ``events`` is the login's ``Events`` header: which event classes Asterisk sends this
    session (``on``: all, ``off``: none, or classes such as ``system,agent``). Answers to
    actions, list events included, come whatever it says.
    """

    def __init__(
        self,
        host: str,
        port: int,
        user: str,
        password: str,
        action_timeout: float = 5.0,
        ping_interval: float = 5.0,
        *,
        reconnect_delay: int = 1,
        event_queue_max: int = 10000,
        events: str = "on",
    ) -> None:
        self.link = LinkState("ami")
        self._event_classes = events
        self._host = host
        self._port = port
        self._user = user
        self._password = password
        self._action_timeout = action_timeout
        self._ping_interval = ping_interval
        self._reconnect_delay = reconnect_delay
        self._events: asyncio.Queue[AmiEvent] = asyncio.Queue(event_queue_max)
        self._subscribers: list[AmiSubscriber] = []
        self._connected_handlers: list[AmiConnected] = []
        self._manager: _Manager | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._up = asyncio.Event()
        self._down = asyncio.Event()
        self._down.set()
        self.dropped_events = 0

    def __repr__(self) -> str:
        return f"AmiClient(host={self._host!r}, port={self._port})"

    def subscribe(self, callback: AmiSubscriber) -> None:
        """Await ``callback(event)`` for every AMI event, in order (errors are logged)."""
        self._subscribers.append(callback)

    def on_event(self, callback: AmiSubscriber) -> None:
        """Same as :meth:`subscribe` (the name the ARI client uses)."""
        self.subscribe(callback)

    def on_connected(self, callback: AmiConnected) -> None:
        """Await ``callback()`` after every login, before that connection's events (errors are
        logged)."""
        self._connected_handlers.append(callback)

    async def start(self) -> None:
        """Connect (in the background) and start the dispatcher and the watchdog."""
        if self._manager is not None:
            raise RuntimeError("AmiClient already started")
        manager = _Manager(
            host=self._host,
            port=self._port,
            username=self._user,
            secret=self._password,
            events=self._event_classes,
            ping_delay=_NO_PINGER,
            ping_interval=_NO_PINGER,
            reconnect_timeout=self._reconnect_delay,
            forgetable_actions=_FORGETTABLE,
            loop=asyncio.get_running_loop(),
            on_login=self._logged_in,
            on_disconnect=self._disconnected,
            log=_PanoramiskLog(),
        )
        manager.register_event("*", self._enqueue)
        self._manager = manager
        self._tasks = [
            asyncio.create_task(self._dispatch_forever(), name="ami-events"),
            asyncio.create_task(self._watchdog(), name="ami-watchdog"),
        ]
        manager.connect()

    async def wait_connected(self) -> None:
        """Return once logged in (wrap in ``asyncio.timeout`` to bound it)."""
        await self._up.wait()

    async def wait_disconnected(self) -> None:
        """Return once the link is down (at once when it is)."""
        await self._down.wait()

    async def close(self) -> None:
        """Stop reconnecting, close the connection and stop the owned tasks."""
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        if self._manager is not None:
            self._manager.closing = True
            self._manager.close()
            self._manager = None
        self._went_down("closed")

    async def action(self, action: Mapping[str, str]) -> list[dict[str, Any]]:
        """Send one action and return every message of its answer (one, or a list's events
        followed by its ``...Complete`` event), headers as sent by Asterisk.

        Raises :class:`PbxUnreachable` when the link is down or no answer comes within the
        action timeout, :class:`PbxRefused` (status 0: AMI has no status codes) when Asterisk
        answers ``Error``.
        """
        manager = self._manager
        if manager is None or not self.link.up or manager.protocol is None:
            raise PbxUnreachable("AMI link is down")
        prepared = Action(prepare_action(action))
        future = manager.send_action(prepared)
        try:
            result = await asyncio.wait_for(future, self._action_timeout)
        except TimeoutError:
            responses = getattr(manager.protocol, "responses", {})
            responses.pop(prepared.id, None)
            raise PbxUnreachable(
                f"AMI {prepared['Action']} got no answer in {self._action_timeout} s"
            ) from None
        messages = result if isinstance(result, list) else [result]
        if messages and is_error(messages[0]):
            raise PbxRefused(0, error_message(messages[0]))
        return [dict(m.items()) for m in messages]

    async def ping(self) -> None:
        """Ask Asterisk for a ``Pong``."""
        await self.action({"Action": "Ping"})

    async def contact_status(self) -> dict[str, str]:
        """Endpoint -> best PJSIP contact status (``Reachable``...); unregistered endpoints
        do not appear."""
        try:
            messages = await self.action({"Action": "PJSIPShowContacts"})
        except PbxRefused as exc:
            if "no contacts" in exc.message.lower():
                return {}
            raise
        return contact_statuses(messages)

    async def device_state(self, device: str) -> str:
        """The state of ``device`` (e.g. ``PJSIP/agent1``): ``NOT_INUSE``, ``INUSE``,
        ``UNAVAILABLE``..."""
        messages = await self.action({"Action": "Getvar", "Variable": f"DEVICE_STATE({device})"})
        return normalize(messages[0]).get("value", "UNKNOWN")

    # -- panoramisk callbacks: plain functions that must never raise ---------------------------

    def _logged_in(self, _manager: Any) -> None:
        try:
            self.link.mark_up()
            self._down.clear()
            self._up.set()
            _log.info("ami_connected", reconnects=self.link.reconnects)
            if self._connected_handlers:
                self._events.put_nowait(_LoggedIn(name=""))
        except Exception:  # a raise here would reach panoramisk's loop callbacks
            _log.exception("ami_login_callback_failed")

    def _disconnected(self, _manager: Any, exc: Any) -> None:
        try:
            self._went_down(f"disconnected: {exc}" if isinstance(exc, Exception) else None)
        except Exception:
            _log.exception("ami_disconnect_callback_failed")

    def _enqueue(self, _manager: Any, message: Any) -> None:
        try:
            self._events.put_nowait(parse_ami_event(message))
        except asyncio.QueueFull:
            self.dropped_events += 1
        except Exception:
            _log.exception("ami_event_parse_failed")

    # -- owned tasks --------------------------------------------------------------------------

    def _went_down(self, reason: str | None) -> None:
        """Mark the link down; ``reason`` (when known) becomes its last error."""
        if self.link.up:
            _log.warning("ami_disconnected", reason=reason)
        self._up.clear()
        self._down.set()
        self.link.mark_down(reason)

    async def _dispatch_forever(self) -> None:
        while True:
            event = await self._events.get()
            if isinstance(event, _LoggedIn):
                for connected in list(self._connected_handlers):
                    try:
                        await connected()
                    except Exception:
                        _log.exception("ami_connected_handler_failed")
                continue
            for subscriber in list(self._subscribers):
                try:
                    await subscriber(event)
                except Exception:
                    _log.exception("ami_subscriber_failed", ami_event=event.name)

    async def _watchdog(self) -> None:
        while True:
            await asyncio.sleep(self._ping_interval)
            if not self.link.up:
                continue
            try:
                await self.ping()
            except (PbxUnreachable, PbxRefused) as exc:
                _log.warning("ami_watchdog_reconnect", error=str(exc))
                self._force_reconnect(f"watchdog: {exc}")

    def _force_reconnect(self, reason: str) -> None:
        """Drop the transport; panoramisk notices and reconnects after its delay."""
        self._went_down(reason)
        manager = self._manager
        transport = getattr(getattr(manager, "protocol", None), "transport", None)
        if transport is not None:
            transport.abort()


class _PanoramiskLog:
    """Routes panoramisk's logging into structlog. Only the message template is kept: its
    arguments may echo a whole action (a Login carries the secret)."""

    def debug(self, *_args: Any, **_kwargs: Any) -> None:
        """panoramisk's debug chatter is dropped."""

    def info(self, msg: str, *_args: Any, **_kwargs: Any) -> None:
        """Logged at debug level."""
        _log.debug("panoramisk", message=msg)

    def warning(self, msg: str, *_args: Any, **_kwargs: Any) -> None:
        """Logged at warning level."""
        _log.warning("panoramisk", message=msg)

    error = warning
    exception = warning
