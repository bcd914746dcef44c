"""``callcontrol flows simulate``: run a flow with no Asterisk.

The same :class:`~callcontrol.flows.engine.FlowEngine` runs against :class:`SimulatedCall`, a
:class:`~callcontrol.calls.context.CallContext` over :class:`~callcontrol.fake_telephony.
FakeTelephony` that plays the caller from an input script. Script tokens (spaces ignored):

    0-9 * #   the caller presses that key; it arrives as soon as the flow listens, so while a
              prompt plays (barge-in and type-ahead apply as on a real call)
    P         the current prompt plays to its end before the next token
    T         silence: the step waits until its timeout
    H         the caller hangs up
    R / E     the recording in progress ends with a message / with nothing recorded

With ``auto=True`` (the simulator's mode) a prompt or recording still pending when the flow
waits and the next token is not a key ends by itself (recordings with a 3 s message); when the
script is used up the caller stays silent, and hangs up after 50 more waits. With
``auto=False`` (unit tests) every event must be scripted, and running out of script fails.

http steps are answered from fixtures (:class:`FixtureHttp`); queue and dial steps take their
results from lists (default: the agent answered and hung up first -> ``after``; ``next``).
"""

from __future__ import annotations

import asyncio
import json
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, tzinfo
from pathlib import Path
from typing import Any, TextIO

from ruamel.yaml import YAML

from callcontrol.calls.context import (
    CallerHungUp,
    CallerInfo,
    CallRecordings,
    DialRequest,
    NoRecordings,
    PlaybackIds,
    QueueRequest,
    QueueResult,
)
from callcontrol.calls.inbox import InboxEvent
from callcontrol.fake_telephony import FakeTelephony
from callcontrol.flows.engine import FlowEngine, FlowServices
from callcontrol.flows.expressions import Sandbox
from callcontrol.flows.httpstep import HttpOutcome, HttpRequest
from callcontrol.flows.loader import LoadedFlow
from callcontrol.flows.model import Schedule as ScheduleModel
from callcontrol.flows.prompts import PromptResolver
from callcontrol.telephony import (
    DtmfReceived,
    PlaybackFinished,
    RecordingFinished,
    Telephony,
    TelephonyEvent,
)

KEYS = frozenset("0123456789*#")
SILENT_WAITS_BEFORE_HANGUP = 50


class ScriptExhausted(AssertionError):
    """A strict (``auto=False``) script ran out while the flow still waited for the caller."""


class SimulatedCall(PlaybackIds):
    """A CallContext whose caller follows a token script (see the module docstring)."""

    def __init__(
        self,
        script: str = "",
        *,
        auto: bool = True,
        now: datetime | None = None,
        caller: CallerInfo | None = None,
        call_id: str = "sim-call",
        channel_id: str = "sim-chan",
        extension: str = "100",
        queue_exits: Sequence[str] = (),
        dial_results: Sequence[str] = (),
    ) -> None:
        self.call_id = call_id
        self.channel_id = channel_id
        self.extension = extension
        self.language = "en"
        self.caller = caller or CallerInfo(number="+390612345678", e164="+390612345678")
        self.fake = FakeTelephony()
        self.fake.on_command = self._on_command
        self.telephony: Telephony = self.fake
        self.recordings: CallRecordings = NoRecordings()
        self.tokens: deque[str] = deque(t for t in script if not t.isspace())
        self.auto = auto
        self.clock = now or datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
        self.timeline: list[tuple[str, dict[str, Any]]] = []
        self.updates: list[dict[str, Any]] = []
        self.queue_requests: list[QueueRequest] = []
        self.dial_requests: list[DialRequest] = []
        self.waits: list[float | None] = []
        self.handed_back: list[list[InboxEvent]] = []
        self._queue_exits = deque(queue_exits)
        self._dial_results = deque(dial_results)
        self._inbox: deque[InboxEvent] = deque()
        self._playing: str | None = None
        self._recording: str | None = None
        self._silent_waits = 0

    # --- the fake telephony's side ----------------------------------------------------------

    def _on_command(self, name: str, args: dict[str, Any]) -> None:
        if name == "play":
            self._playing = args["playback_id"]
        elif name == "stop_playback" and args["playback_id"] == self._playing:
            self._inbox.append(self._finished(args["playback_id"], "cancelled"))
            self._playing = None
        elif name == "record":
            self._recording = args["name"]
        elif name == "stop_recording" and args["name"] == self._recording:
            self._inbox.append(
                RecordingFinished(channel_id=self.channel_id, name=args["name"], duration_s=3.0)
            )
            self._recording = None

    def _finished(self, playback_id: str, state: str = "done") -> PlaybackFinished:
        return PlaybackFinished(channel_id=self.channel_id, playback_id=playback_id, state=state)

    def _end_media(self, recorded: float = 3.0) -> TelephonyEvent | None:
        if self._playing is not None:
            event: TelephonyEvent = self._finished(self._playing)
            self._playing = None
            return event
        if self._recording is not None:
            event = RecordingFinished(
                channel_id=self.channel_id, name=self._recording, duration_s=recorded
            )
            self._recording = None
            return event
        return None

    # --- CallContext ------------------------------------------------------------------------

    def now(self) -> datetime:
        """The simulated clock (fixed)."""
        return self.clock

    async def next_event(self, timeout: float | None) -> InboxEvent | None:
        """The next scripted event (see the module docstring)."""
        await asyncio.sleep(0)
        self.waits.append(timeout)
        if self._inbox:
            return self._inbox.popleft()
        if not self.tokens:
            if self.auto and (event := self._end_media()) is not None:
                return event
            if not self.auto:
                raise ScriptExhausted("the flow waits but the script is used up")
            self._silent_waits += 1
            if self._silent_waits > SILENT_WAITS_BEFORE_HANGUP:
                raise CallerHungUp()
            return None
        token = self.tokens[0]
        if token in KEYS:
            self.tokens.popleft()
            return DtmfReceived(channel_id=self.channel_id, digit=token)
        if token == "H":
            self.tokens.popleft()
            raise CallerHungUp()
        if token == "P":
            self.tokens.popleft()
            return self._end_media()
        if token in ("R", "E"):
            if self.auto and self._playing is not None:
                return self._end_media()  # the prompt before the recording ends first
            self.tokens.popleft()
            return self._end_media(recorded=0.0 if token == "E" else 3.0)
        if token == "T":
            if self.auto and (event := self._end_media()) is not None:
                return event
            self.tokens.popleft()
            return None
        raise ValueError(f"unknown script token {token!r}: use 0-9 * # P T H R E")

    def push_back(self, event: InboxEvent) -> None:
        """Put an event back at the head of the inbox."""
        self._inbox.appendleft(event)

    def claim_channel(self, channel_id: str) -> None:
        """Nothing to route in a simulation."""

    def release_channel(self, channel_id: str) -> None:
        """Nothing to route in a simulation."""

    def log(self, kind: str, **data: Any) -> None:
        """Keep the timeline entry."""
        self.timeline.append((kind, data))

    def update_call(self, **fields: Any) -> None:
        """Keep the call row update."""
        self.updates.append(fields)

    async def enter_queue(self, request: QueueRequest) -> QueueResult:
        """The next scripted queue exit (default ``after``)."""
        self.queue_requests.append(request)
        self.handed_back.append(list(self._inbox))
        self._inbox.clear()  # the ACD consumes what was handed back to it
        return QueueResult(self._queue_exits.popleft() if self._queue_exits else "after")

    async def dial(self, request: DialRequest) -> str:
        """The next scripted dial result (default ``next``)."""
        self.dial_requests.append(request)
        return self._dial_results.popleft() if self._dial_results else "next"

    def kinds(self) -> list[str]:
        """The kinds of the timeline entries so far."""
        return [kind for kind, _ in self.timeline]

    def entries(self, kind: str) -> list[dict[str, Any]]:
        """The data of every timeline entry of ``kind``."""
        return [data for k, data in self.timeline if k == kind]


@dataclass(frozen=True)
class HttpFixture:
    """One canned answer: the first fixture whose ``url`` occurs in the request URL (and whose
    ``method`` matches, when given) answers ``status`` + ``json``, or times out, or fails to
    connect."""

    url: str
    status: int = 200
    json: Any = None
    method: str | None = None
    timeout: bool = False
    connection_error: bool = False
    ms: int = 5


class FixtureHttp:
    """An http sender answering from fixtures; a request no fixture matches is an error."""

    def __init__(self, fixtures: Sequence[HttpFixture] = ()) -> None:
        self.fixtures = list(fixtures)
        self.requests: list[HttpRequest] = []

    @classmethod
    def from_data(cls, data: Any) -> FixtureHttp:
        """Fixtures from a list of mappings (the fixture file's content)."""
        return cls([HttpFixture(**dict(item)) for item in data or []])

    async def send(self, request: HttpRequest) -> HttpOutcome:
        """Answer from the first matching fixture."""
        self.requests.append(request)
        for fx in self.fixtures:
            if fx.url in request.url and fx.method in (None, request.method):
                if fx.timeout:
                    return HttpOutcome(
                        False,
                        None,
                        round(request.timeout * 1000),
                        error=f"timeout after {request.timeout}s",
                    )
                if fx.connection_error:
                    return HttpOutcome(False, None, fx.ms, error="connection refused")
                if not 200 <= fx.status < 300:
                    return HttpOutcome(False, fx.status, fx.ms, error=f"HTTP {fx.status}")
                if fx.json is None:
                    return HttpOutcome(False, fx.status, fx.ms, error="answer is not JSON")
                return HttpOutcome(True, fx.status, fx.ms, body=fx.json)
        return HttpOutcome(False, None, 0, error=f"no http fixture matches {request.url}")


@dataclass(frozen=True)
class SimulationResult:
    """What a simulated call did."""

    outcome: str
    path: tuple[str, ...]
    variables: dict[str, Any]
    timeline: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    media: list[list[str]] = field(default_factory=list)

    def write_report(self, out: TextIO, as_json: bool = False) -> None:
        """Print the path taken, the outcome and the final variables (or the three as JSON)."""
        if as_json:
            data = {"outcome": self.outcome, "path": list(self.path), "variables": self.variables}
            print(json.dumps(data, default=str, indent=2), file=out)
            return
        print("path: " + " -> ".join(self.path), file=out)
        print(f"outcome: {self.outcome}", file=out)
        for key, value in sorted(self.variables.items()):
            print(f"  {key} = {json.dumps(value, default=str)}", file=out)


async def run_simulation(
    flow: str,
    flows: Mapping[str, LoadedFlow],
    *,
    digits: str = "",
    variables: Mapping[str, Any] | None = None,
    http: FixtureHttp | None = None,
    now: datetime | None = None,
    queue_exits: Sequence[str] = (),
    dial_results: Sequence[str] = (),
    prompts_dir: Path | None = None,
    secrets: Mapping[str, str] | None = None,
    services: FlowServices | None = None,
    schedules: Mapping[str, ScheduleModel] | None = None,
    site_timezone: tzinfo = UTC,
) -> SimulationResult:
    """Run ``flow`` (from the ``flows`` snapshot) for one simulated call; ``schedules`` are
    the config's shared schedules, ``site_timezone`` the zone of ``now``."""
    call = SimulatedCall(digits, now=now, queue_exits=queue_exits, dial_results=dial_results)
    if services is None:
        folder = prompts_dir or (
            next(iter(flows.values())).path.parent / "prompts" if flows else Path("prompts")
        )
        services = FlowServices(
            Sandbox(secrets), PromptResolver(folder), http or FixtureHttp(),
            schedules=dict(schedules or {}), site_timezone=site_timezone,
        )
    result = await FlowEngine(call, flows, services).run(flow, variables)
    media = [args["media"] for name, args in call.fake.commands if name == "play"]
    return SimulationResult(result.outcome, result.path, result.variables, call.timeline, media)


def load_fixture_file(path: Path) -> FixtureHttp:
    """Read an http fixture file (YAML or JSON: a list of fixtures)."""
    return FixtureHttp.from_data(YAML(typ="safe").load(path.read_text()))
