"""Runs one flow for one call: a state machine inside that call's task.

    step entered ──handler──> (exit label, target step) ──> next step ... ──> target None: end
         │ error (template, prompt, http, PBX)                          ▲
         └──> the step's `error` exit, else the flow's `on_error`, ─────┘
              else a short apology and outcome `failed`
    CallerHungUp anywhere ──> the flow's `on_hangup` (set/http/branch only) ──> result

State: the flow being run (from a snapshot of every flow's version taken when the call started,
so ``goto_flow`` lands on those versions too), the variables, and the type-ahead digits: digits
pressed while a prompt plays without barge-in are kept in order for the next menu or gather and
handed back to the call's inbox before a queue, dial or record step. No digit is dropped.

Each handler (one per step kind, all in :data:`FlowEngine._handlers`) talks to the PBX only
through :class:`~callcontrol.calls.context.CallContext` and returns the exit it takes and its
target; the exits are the model's (``Step.target`` applies FLOWS.md's defaults). Any exception
inside a step (a bad value, an unplayable prompt, an ARI error, a bug) takes the step's error
path; only the caller hanging up (and cancellation) leaves the loop. Everything of consequence
goes on the call's timeline through :meth:`CallContext.log`, masked by derivation: secrets,
every ``{{ }}`` part computed from one, and every variable ``set`` from one (the call's
:class:`Masker`).

Outcomes: ``completed`` for a normal end, and when the caller hangs up in the IVR (the IVR did
its part; the queue layer's statistics are kept by the ACD); ``abandoned`` only when the queue
layer reports the caller hung up while queued; ``voicemail`` when a ``record`` step saved a
message; ``callback_requested`` when the caller chose a callback in the queue; ``failed`` when
an error had no ``error``/``on_error`` step to go to.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import re
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, tzinfo
from typing import Any, Protocol

from callcontrol.calls.context import (
    CallContext,
    CallerHungUp,
    Deadline,
    DialRequest,
    MediaWait,
    QueueRequest,
)
from callcontrol.errors import CallControlError
from callcontrol.flows.expressions import Evaluation, Sandbox
from callcontrol.flows.httpstep import HttpOutcome, HttpRequest, render_request
from callcontrol.flows.loader import LoadedFlow
from callcontrol.flows.model import (
    BranchStep,
    DialStep,
    GatherSpec,
    GatherStep,
    GotoFlowStep,
    HangupStep,
    HoursStep,
    HttpStep,
    MenuSpec,
    MenuStep,
    PlayStep,
    QueueStep,
    RecordStep,
    SetStep,
    SplitStep,
    StepBase,
)
from callcontrol.flows.model import Schedule as ScheduleModel
from callcontrol.flows.prompts import PromptResolver
from callcontrol.flows.schedule import Overrides, Schedule, decide
from callcontrol.telephony import (
    DtmfReceived,
    PlaybackFinished,
    RecordingFailed,
    RecordingFinished,
)

APOLOGY = ("sound:im-sorry", "sound:vm-goodbye")
"""What a caller hears when their call cannot go on (a flow error, no flow for the number)."""
MAX_TRANSITIONS = 500
MAX_ERRORS = 3
MAX_ON_HANGUP_STEPS = 20
PLAYBACK_MAX = 900.0
STOP_WAIT = 5.0
RECORD_GRACE = 10.0
ON_HANGUP_KINDS = frozenset({"set", "http", "branch"})

Exit = tuple[str, str | None]
"""An exit label (for the timeline) and the step it leads to (None: the flow ends)."""


@dataclass(frozen=True)
class Retry:
    """A menu or gather answer that asks again: ``prompt`` first (``None``: just the prompt);
    ``counts=False`` (a ``repeat`` key) does not use up an attempt."""

    prompt: Any
    counts: bool = True


class StepFailed(CallControlError):
    """Something inside a step failed (bad value, unplayable prompt, http error...)."""

    error_id = "flow_step"


class HttpSender(Protocol):
    """What the engine needs of the http client (:class:`~.httpstep.HttpStepClient`)."""

    async def send(self, request: HttpRequest) -> HttpOutcome:
        """Send a rendered request."""


@dataclass
class FlowServices:
    """What every engine shares: the sandbox (with secrets), prompts, the http client, the
    config's shared schedules, operator overrides and the site time zone (for ``now``). The
    call's recordings (muted during sensitive gathers) are the context's."""

    sandbox: Sandbox
    prompts: PromptResolver
    http: HttpSender
    schedules: Mapping[str, ScheduleModel] = field(default_factory=dict)
    overrides: Overrides = field(default_factory=Overrides)
    site_timezone: tzinfo = UTC


@dataclass(frozen=True)
class FlowResult:
    """How the flow ended: an outcome of :data:`callcontrol.store.records.OUTCOMES`, the final
    variables (secrets masked) and the path of steps taken (``flow:step`` outside the entry
    flow)."""

    outcome: str
    variables: dict[str, Any]
    path: tuple[str, ...] = ()


def mask_digits(digits: str) -> str:
    """Mask sensitive digits: all of them; with 12 or more the last four may show."""
    if len(digits) >= 12:
        return "*" * (len(digits) - 4) + digits[-4:]
    return "*" * len(digits)


def _nth(values: Sequence[float], attempt: int) -> float:
    return values[min(attempt, len(values)) - 1]


class FlowEngine:
    """Runs flows for one call. ``flows`` is the snapshot taken when the call started."""

    def __init__(
        self, ctx: CallContext, flows: Mapping[str, LoadedFlow], services: FlowServices
    ) -> None:
        self.ctx = ctx
        self.flows = flows
        self.services = services
        self.variables: dict[str, Any] = {}
        self.path: list[str] = []
        self._entry = ""
        self._loaded: LoadedFlow | None = None
        self._typeahead: deque[str] = deque()
        self._recordings = 0
        self._outcome: str | None = None
        self._voicemail = False
        self._abandoned = False
        self._schedules: dict[int, Schedule] = {}
        self._masker = services.sandbox.masker()
        self._tainted: set[str] = set()
        """Variables set from a secret: templates reading them are masked like secrets."""
        self._handlers: dict[str, Callable[[str, Any], Awaitable[Exit]]] = {
            "play": self._play_step,
            "menu": self._menu,
            "gather": self._gather,
            "branch": self._branch,
            "set": self._set,
            "hours": self._hours,
            "http": self._http,
            "queue": self._queue,
            "dial": self._dial,
            "record": self._record,
            "split": self._split,
            "goto_flow": self._goto_flow,
            "hangup": self._hangup,
        }

    # --- the loop ---------------------------------------------------------------------------

    async def run(self, flow: str, variables: Mapping[str, Any] | None = None) -> FlowResult:
        """Run ``flow`` from its start step until it ends or the caller hangs up."""
        loaded = self.flows.get(flow)
        if loaded is None:
            self._log("flow_missing", flow=flow)
            await self._apologize()
            return self._result("failed")
        self._entry = flow
        self._switch(loaded, initial=variables)
        self.ctx.update_call(flow=flow, flow_version=loaded.version)
        try:
            await self.ctx.recordings.leg(flow=flow)
            await self.ctx.recordings.start()
            outcome = await self._run_steps(loaded.flow.start)
        except CallerHungUp as hung_up:
            self._log("caller_hung_up", cause=hung_up.cause)
            await self._run_on_hangup()
            outcome = self._final_outcome()
        if self._typeahead:
            self._log("unused_digits", digits="".join(self._typeahead))
        return self._result(outcome)

    def _result(self, outcome: str) -> FlowResult:
        variables = self._masker.mask_value(self.variables)
        self._log("flow_ended", outcome=outcome, variables=variables)
        return FlowResult(outcome, variables, tuple(self.path))

    def _final_outcome(self) -> str:
        if self._outcome is not None:
            return self._outcome
        if self._abandoned:
            return "abandoned"
        return "voicemail" if self._voicemail else "completed"

    @property
    def flow(self) -> LoadedFlow:
        """The flow being run."""
        assert self._loaded is not None, "run() first"
        return self._loaded

    def _switch(self, loaded: LoadedFlow, initial: Mapping[str, Any] | None = None) -> None:
        self._loaded = loaded
        for name, value in loaded.flow.variables.items():
            self.variables.setdefault(name, copy.deepcopy(value))
        self.variables.update(initial or {})
        self._log("flow_started", flow=loaded.flow.flow, version=loaded.version)

    async def _run_steps(self, start: str) -> str:
        name: str | None = start
        errors = 0
        for _ in range(MAX_TRANSITIONS):
            if name is None:
                return self._final_outcome()
            step = self.flow.flow.steps.get(name)
            if step is None:
                self._log("step_missing", flow=self.flow.flow.flow, step=name)
                await self._apologize()
                return "failed"
            self._enter(name, step)
            try:
                label, target = await self._handlers[step.kind](name, step)
            except CallerHungUp:
                raise
            except Exception as exc:  # any failure inside a step takes its error path
                errors += 1
                self._log("step_error", step=name, error=f"{type(exc).__name__}: {exc}")
                target = step.error or self.flow.flow.on_error
                if target is None or target == name or errors > MAX_ERRORS:
                    await self._apologize()
                    return "failed"
                label = "error" if step.error else "on_error"
            self._log("exit", step=name, exit=label, to=target)
            name = target
        self._log("too_many_steps", limit=MAX_TRANSITIONS)
        await self._apologize()
        return "failed"

    def _enter(self, name: str, step: StepBase) -> None:
        flow = self.flow.flow.flow
        self.path.append(name if flow == self._entry else f"{flow}:{name}")
        self._log("step", flow=flow, step=name, step_kind=step.kind)
        if step.tags:
            self.ctx.update_call(tags=list(step.tags))

    async def _apologize(self) -> None:
        self._outcome = "failed"
        try:
            await self._play("error", list(APOLOGY), barge_in=False)
        except CallerHungUp:
            raise
        except Exception as exc:
            self._log("apology_failed", error=str(exc))

    async def _run_on_hangup(self) -> None:
        if self._loaded is None:
            return
        name = self.flow.flow.on_hangup
        for _ in range(MAX_ON_HANGUP_STEPS):
            if name is None:
                return
            step = self.flow.flow.steps.get(name)
            if step is not None and step.kind == "hangup":
                return  # the call is already gone: a hangup step just ends the chain
            if step is None or step.kind not in ON_HANGUP_KINDS:
                self._log("on_hangup_stopped", step=name, step_kind=step.kind if step else None)
                return
            self._enter(name, step)
            try:
                label, name = await self._handlers[step.kind](name, step)
            except CallerHungUp:
                raise
            except Exception as exc:
                self._log("step_error", step=name, error=f"{type(exc).__name__}: {exc}")
                label, name = "error", step.error
            self._log("exit", step=self.path[-1], exit=label, to=name)

    # --- shared helpers ---------------------------------------------------------------------

    def _log(self, kind: str, **data: Any) -> None:
        self.ctx.log(kind, **self._masker.mask_value(data))

    def _scope(self) -> dict[str, Any]:
        ctx = self.ctx
        return {
            **self.variables,
            "caller": {
                "number": ctx.caller.number,
                "name": ctx.caller.name,
                "e164": ctx.caller.e164,
                "withheld": ctx.caller.withheld,
            },
            "call": {"id": ctx.call_id, "extension": ctx.extension},
            "now": ctx.now().astimezone(self.services.site_timezone),
        }

    def _note_missing(self, step: str, missing: Sequence[str]) -> None:
        if missing:
            self._log("missing_value", step=step, names=sorted(set(missing)))

    def _evaluate(self, step: str, template: str) -> Evaluation:
        result = self.services.sandbox.render(template, self._scope(), tainted=self._tainted)
        self._note_rendered(step, result)
        return result

    def _note_rendered(self, step: str, result: Evaluation) -> None:
        self._masker.add(result.secret_parts)
        self._note_missing(step, result.missing)

    def _render(self, step: str, template: str) -> str:
        return str(self._evaluate(step, template).value)

    @property
    def language(self) -> str:
        """The language prompts are played in: the ``language`` variable, else the flow's."""
        return str(self.variables.get("language") or self.flow.flow.language)

    def _media(self, step: str, prompts: Any) -> list[str]:
        if prompts is None:
            return []
        return self.services.prompts.resolve(
            prompts, self.language, lambda text: self._render(step, text)
        )

    def _save(self, step: str, name: str, value: Any) -> None:
        self.variables[name] = value
        self._tainted.discard(name)
        self._log("saved", step=step, name=name, value=value)

    async def _play(self, step: str, media: list[str], *, barge_in: bool,
                    secret: bool = False) -> None:
        """Play ``media`` as one playback and wait for its end, keeping digits pressed
        (``secret``: the digits are a sensitive entry's, logged masked)."""
        if not media:
            return
        if barge_in and self._typeahead:
            self._log("prompt_skipped", step=step, reason="digits already pressed")
            return
        playback = self.ctx.next_playback_id(step)
        await self.ctx.telephony.play(self.ctx.channel_id, media, playback, self.language)
        wait = MediaWait(PLAYBACK_MAX, lambda: self.ctx.telephony.stop_playback(playback),
                         STOP_WAIT)
        while (event := await wait.next(self.ctx.next_event)) is not None:
            if isinstance(event, PlaybackFinished) and event.playback_id == playback:
                if event.state == "failed":
                    raise StepFailed(f"Asterisk could not play {media}")
                break
            if isinstance(event, DtmfReceived) and event.channel_id == self.ctx.channel_id:
                self._typeahead.append(event.digit)
                if barge_in and not wait.stopped:
                    self._log("barge_in", step=step,
                              digit=mask_digits(event.digit) if secret else event.digit)
                    await wait.stop()
        if wait.expired:
            raise StepFailed(f"playback {playback} did not end in {PLAYBACK_MAX}s")

    async def _next_digit(self, wait: float) -> str | None:
        """The next digit (type-ahead first), or None after ``wait`` seconds of silence."""
        if self._typeahead:
            return self._typeahead.popleft()
        deadline = Deadline(wait)
        while (event := await deadline.next(self.ctx.next_event)) is not None:
            if isinstance(event, DtmfReceived) and event.channel_id == self.ctx.channel_id:
                return event.digit
        return None

    def _hand_back_digits(self) -> None:
        """Put type-ahead digits back in the call's inbox, in order, for the ACD or the PBX."""
        while self._typeahead:
            digit = self._typeahead.pop()
            self.ctx.push_back(DtmfReceived(channel_id=self.ctx.channel_id, digit=digit))

    # --- step kinds -------------------------------------------------------------------------

    async def _play_step(self, name: str, step: PlayStep) -> Exit:
        await self._play(name, self._media(name, step.play), barge_in=step.barge_in)
        return "next", step.next

    async def _asking(
        self, name: str, spec: MenuSpec | GatherSpec, failed: str | None,
        answer: Callable[[int], Awaitable[Exit | Retry]],
    ) -> Exit:
        """Ask up to ``spec.attempts`` times: the prompt (after the last retry prompt), then
        ``answer(attempt)``; an exit ends the step, a :class:`Retry` asks again."""
        attempt, retry = 1, None
        while True:
            media = self._media(name, retry) + self._media(name, spec.prompt)
            await self._play(name, media, barge_in=spec.barge_in,
                             secret=isinstance(spec, GatherSpec) and spec.sensitive)
            async with self._media_flowing():
                result = await answer(attempt)
            if not isinstance(result, Retry):
                return result
            retry = result.prompt
            if not result.counts:
                continue
            if attempt >= spec.attempts:
                return "failed", failed
            attempt += 1

    @asynccontextmanager
    async def _media_flowing(self) -> AsyncIterator[None]:
        """While a recorded call waits for digits, send the caller silence: with nothing
        played and the caller's audio replaced by DTMF events, no media flows and the
        recording loses that time (measured: 1.4 s of a 6 s call for an 8-digit entry)."""
        if not self.ctx.recordings.recording:
            yield
            return
        await self.ctx.telephony.start_silence(self.ctx.channel_id)
        try:
            yield
        finally:
            with contextlib.suppress(CallControlError):  # the caller may be gone
                await self.ctx.telephony.stop_silence(self.ctx.channel_id)

    async def _menu(self, name: str, step: MenuStep) -> Exit:
        spec = step.menu

        async def answer(attempt: int) -> Exit | Retry:
            key = await self._next_digit(_nth(spec.timeout, attempt))
            if key is None:
                self._log("timeout", step=name, attempt=attempt)
                return Retry(spec.timeout_prompt)
            self._log("digits", step=name, attempt=attempt, digits=key)
            target = spec.options.get(key)
            if target == "repeat":
                return Retry(None, counts=False)
            if target is not None:
                if spec.save_as:
                    self._save(name, spec.save_as, key)
                return key, target
            global_target = self.flow.flow.global_keys.get(key)
            if global_target is not None:
                return f"global {key}", global_target
            self._log("invalid", step=name, attempt=attempt, digits=key)
            return Retry(spec.invalid_prompt)

        return await self._asking(name, spec, step.failed, answer)

    async def _gather(self, name: str, step: GatherStep) -> Exit:
        if not step.gather.sensitive:
            return await self._gather_attempts(name, step)
        recordings = self.ctx.recordings
        await recordings.mute("flow", reason=f"sensitive gather {name}")
        try:
            return await self._gather_attempts(name, step)
        finally:
            # digits typed beyond the entry are part of the secret: never kept nor replayed
            if self._typeahead:
                self._log("digits_discarded", step=name, count=len(self._typeahead))
                self._typeahead.clear()
            try:
                await recordings.unmute("flow", reason=f"sensitive gather {name}")
            except CallControlError as exc:
                self._log("recording_unmute_failed", step=name, error=str(exc))

    async def _gather_attempts(self, name: str, step: GatherStep) -> Exit:
        spec = step.gather

        async def answer(attempt: int) -> Exit | Retry:
            digits, finished = await self._collect(
                spec.finish_on,
                spec.max_digits,
                _nth(spec.timeout, attempt),
                spec.inter_digit_timeout,
            )
            shown = mask_digits(digits) if spec.sensitive else digits
            if not digits and not finished:
                self._log("timeout", step=name, attempt=attempt)
                return Retry(spec.timeout_prompt)
            if spec.min_digits <= len(digits) and (
                spec.pattern is None or re.fullmatch(spec.pattern, digits)
            ):
                self._log("digits", step=name, attempt=attempt, digits=shown)
                if spec.save_as:
                    self._save(name, spec.save_as, shown)
                return "next", step.next
            self._log("invalid", step=name, attempt=attempt, digits=shown)
            return Retry(spec.invalid_prompt)

        return await self._asking(name, spec, step.failed, answer)

    async def _collect(
        self, finish_on: str, max_digits: int, first_wait: float, inter_digit: float
    ) -> tuple[str, bool]:
        digits = ""
        while len(digits) < max_digits:
            digit = await self._next_digit(inter_digit if digits else first_wait)
            if digit is None:
                return digits, False
            if digit == finish_on:
                return digits, True
            digits += digit
        if self._typeahead and self._typeahead[0] == finish_on:
            self._typeahead.popleft()  # the terminator after a full entry belongs to it
        return digits, False

    async def _branch(self, name: str, step: BranchStep) -> Exit:
        scope = self._scope()
        for case in step.branch:
            result = self.services.sandbox.test(case.condition, scope)
            self._note_missing(name, result.missing)
            if result.value:
                return f"if {case.condition}", case.goto
        return "else", step.otherwise

    async def _set(self, name: str, step: SetStep) -> Exit:
        for variable, value in step.set.items():
            from_secret = False
            if isinstance(value, str):
                result = self._evaluate(name, value)
                value, from_secret = str(result.value), bool(result.secret_parts)
            self._save(name, variable, copy.deepcopy(value))
            if from_secret:
                self._tainted.add(variable)
        return "next", step.next

    def _schedule(self, step: HoursStep) -> tuple[str | None, Schedule]:
        name: str | None = None
        if isinstance(step.hours, str):
            name = step.hours
            found = self.flow.flow.schedules.get(name) or self.services.schedules.get(name)
            if found is None:
                raise StepFailed(f"unknown schedule {name!r}")
            model = found
        else:
            model = step.hours
        if id(model) not in self._schedules:
            self._schedules[id(model)] = Schedule.from_mapping(model.model_dump())
        return name, self._schedules[id(model)]

    async def _hours(self, name: str, step: HoursStep) -> Exit:
        schedule_name, schedule = self._schedule(step)
        state = decide(
            schedule, self.ctx.now(), name=schedule_name, overrides=self.services.overrides
        )
        self._log(
            "hours",
            step=name,
            schedule=schedule_name,
            status=state.status,
            open=state.open,
            reason=state.reason,
        )
        label: str = state.status
        if label == "override" and step.override is None:
            label = "open" if state.open else "closed"
        return label, step.target(label)

    async def _http(self, name: str, step: HttpStep) -> Exit:
        spec = step.http
        request = render_request(
            self.services.sandbox,
            self._scope(),
            method=spec.method,
            url=spec.url,
            headers=spec.headers,
            body=spec.body,
            timeout=spec.timeout,
            tainted=self._tainted,
        )
        self._note_rendered(name, request.rendered)
        outcome = await self.services.http.send(request)
        self.variables["http"] = {"status": outcome.status, "ms": outcome.ms}
        self._log(
            "http",
            step=name,
            **request.describe(),
            status=outcome.status,
            ms=outcome.ms,
            ok=outcome.ok,
            error=outcome.error,
        )
        if not outcome.ok:
            raise StepFailed(f"http: {outcome.error}")
        if spec.save_as:
            self._save(name, spec.save_as, outcome.body)
        return "next", step.next

    async def _queue(self, name: str, step: QueueStep) -> Exit:
        spec = step.queue
        self._hand_back_digits()
        result = await self.ctx.enter_queue(
            QueueRequest(
                name=spec.name,
                priority=spec.priority,
                skills=dict(spec.skills),
                max_wait=spec.max_wait,
                announce_position=spec.announce_position,
                moh=spec.moh,
                callback=spec.callback,
                keys=dict(spec.keys),
                variables=self._masker.mask_value(self.variables),
                recording=spec.recording,
            )
        )
        self._log(
            "queue_result", step=name, queue=spec.name, exit=result.exit, agent=result.agent_id
        )
        if result.exit == "hangup":
            # Hanging up after talking to an agent completes the call; before, abandons it.
            self._abandoned = result.data.get("outcome") != "completed"
            raise CallerHungUp()
        if result.exit == "callback":
            self._outcome = "callback_requested"
            return "callback", None
        if result.exit.startswith("key:"):
            target = spec.keys.get(result.exit.removeprefix("key:"))
            if target is None:
                raise StepFailed(f"queue left with an unknown key: {result.exit}")
            return result.exit, target
        if result.exit not in ("timeout", "no_agents", "full", "after"):
            raise StepFailed(f"queue left with an unknown exit: {result.exit}")
        target = step.target(result.exit)
        if result.exit == "after" and target is None:
            await self.ctx.telephony.hangup(self.ctx.channel_id, "normal")
        return result.exit, target

    async def _dial(self, name: str, step: DialStep) -> Exit:
        spec = step.dial
        to = self._render(name, spec.to)
        self._hand_back_digits()
        status = await self.ctx.dial(
            DialRequest(to=to, timeout=spec.timeout, caller_id=spec.caller_id, via=spec.via,
                        recording=spec.recording)
        )
        self._log("dial_result", step=name, to=to, status=status)
        exits = {"next": step.next, "busy": step.busy, "no_answer": step.no_answer}
        return (status, exits[status]) if status in exits else ("failed", step.failed)

    async def _record(self, name: str, step: RecordStep) -> Exit:
        spec = step.record
        await self._play(name, self._media(name, spec.prompt), barge_in=False)
        self._typeahead.clear()  # digits pressed during the prompt do not end the recording
        message = self.ctx.recordings.voicemail()  # its row, before Asterisk writes
        if message is None:  # a call without recordings: the message stays in the spool
            self._recordings += 1
            safe = re.sub(r"[^A-Za-z0-9_-]", "_", f"{self.ctx.call_id}-{name}")
            recording = asterisk_name = f"vm-{safe}-{self._recordings}"
            row: dict[str, Any] = {}
        else:
            recording, asterisk_name = message.recording_id, message.name
            row = {"n": message.n, "path": message.path, "policy": message.policy}
        try:
            return await self._record_message(name, step, recording, asterisk_name, row)
        finally:
            if message is not None:
                self.ctx.recordings.voicemail_ended(message)

    async def _record_message(self, name: str, step: RecordStep, recording: str,
                              asterisk_name: str, row: dict[str, Any]) -> Exit:
        """Record the message as ``asterisk_name``; ``recording`` is what the timeline and
        ``save_as`` name it (its recording id when it has a row, described by ``row``)."""
        spec = step.record
        await self.ctx.telephony.record(
            self.ctx.channel_id,
            asterisk_name,
            max_duration_s=round(spec.max_duration),
            max_silence_s=round(spec.max_silence or 0),
            beep=spec.beep,
            terminate_on=spec.finish_on,
        )
        self._log("recording_started", step=name, recording=recording, **row)
        try:
            finished = await self._await_recording(asterisk_name,
                                                   spec.max_duration + RECORD_GRACE)
        except CallerHungUp:
            # Hanging up is how most callers end a message: Asterisk keeps the file.
            self._voicemail = True
            if spec.save_as:
                self._save(name, spec.save_as, recording)
            raise
        heard = finished.duration_s is None or finished.duration_s - (finished.silence_s or 0) > 0
        self._log(
            "recording_finished",
            step=name,
            recording=recording,
            duration=finished.duration_s,
            empty=not heard,
        )
        if not heard:
            return "empty", step.target("empty")
        self._voicemail = True
        if spec.save_as:
            self._save(name, spec.save_as, recording)
        return "next", step.next

    async def _await_recording(self, recording: str, limit: float) -> RecordingFinished:
        wait = MediaWait(limit, lambda: self.ctx.telephony.stop_recording(recording), STOP_WAIT)
        while (event := await wait.next(self.ctx.next_event)) is not None:
            if isinstance(event, RecordingFinished) and event.name == recording:
                return event
            if isinstance(event, RecordingFailed) and event.name == recording:
                raise StepFailed(f"recording failed: {event.cause}")
        raise StepFailed(f"recording {recording} did not finish")

    async def _split(self, name: str, step: SplitStep) -> Exit:
        bucket = int(hashlib.sha256(self.ctx.call_id.encode()).hexdigest(), 16) % 100
        total = 0
        for target, weight in step.split.items():
            total += weight
            if bucket < total:
                self._log("split", step=name, bucket=bucket, to=target)
                return f"{weight}%", target
        raise StepFailed("split weights do not sum to 100")

    async def _goto_flow(self, name: str, step: GotoFlowStep) -> Exit:
        spec = step.goto_flow
        loaded = self.flows.get(spec.flow)
        if loaded is None:
            raise StepFailed(f"flow {spec.flow!r} is not live")
        target = spec.step or loaded.flow.start
        if target not in loaded.flow.steps:
            raise StepFailed(f"flow {spec.flow!r} has no step {target!r}")
        self._switch(loaded)
        return f"flow {spec.flow}", target

    async def _hangup(self, name: str, step: HangupStep) -> Exit:
        await self.ctx.telephony.hangup(self.ctx.channel_id, step.hangup.cause)
        return "hangup", None
