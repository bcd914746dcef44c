"""Recording calls on the daemon: one :class:`CallRecorder` per call, one
:class:`RecordingService` that owns the files' last steps, recovery and the daily purge.

A call's recordings, in its own task::

    leg(flow | queue | dial step) --policy decided once per call, logged--> consent prompt
        (before the first recording, when the policy has one)
    start --row written (RecordingStarted)--> Asterisk records the caller's channel
        into a hidden file (MixMonitor: caller left, what the caller hears right)
    mute / unmute (a sensitive gather, the agent's code, the API) --> silence written
    stop / the call ends --> the service finishes the file in the background:
        hidden raw -> YYYY/MM/DD/<call-id>-<n>.wav, then RecordingFinished with its figures

A voicemail message (a flow's ``record`` step) is the call's next recording too, whatever the
call's policy: its row (policy ``voicemail``, mono) is written before Asterisk records it into
its spool, and when it ends the service moves it into the tree and finishes it the same way
(:mod:`callcontrol.recording.voicemail`). A call recording in progress goes on meanwhile.

The row exists before Asterisk writes a byte; the file exists under its name only once it is
whole, so a file under a row's path is never half-written. A recording cut by a crash leaves
its hidden file: :meth:`RecordingService.recover` turns it into the recording (``partial``) at
the next start, and marks rows without any file ``missing``.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from sqlalchemy.ext.asyncio import AsyncEngine

from callcontrol.calls.context import (
    MIXING,
    MIXING_WITH_DTMF,
    CallContext,
    TimelineEntry,
    VoicemailMessage,
    play_and_wait,
)
from callcontrol.clock import utcnow
from callcontrol.config import VOICEMAIL, RecordingSettings
from callcontrol.errors import TelephonyError
from callcontrol.logging import get_logger
from callcontrol.recording.files import measure, wav_from_raw
from callcontrol.recording.paths import RecordingPaths, relative_path
from callcontrol.recording.policy import Decision, decide, policy_for
from callcontrol.recording.reconcile import recover as recover_rows
from callcontrol.recording.retention import purge
from callcontrol.recording.voicemail import bring_in, spool_file, spool_name
from callcontrol.store.recording_queries import recordings_with_status
from callcontrol.store.records import (
    InteractionLog,
    RecordingFinished,
    RecordingMarked,
    RecordingStarted,
    new_id,
)
from callcontrol.telephony import CallRecorderPort

log = get_logger(__name__)

SETTLE_S = 0.3
"""A hidden file that has not grown for this long after the stop is closed by Asterisk."""
CLOSE_WAIT_S = 10.0
"""Longest wait for Asterisk to close a file after the stop."""


@dataclass
class Active:
    """The recording in progress of one call."""

    recording_id: str
    call_id: str
    channel_id: str
    relative: str
    policy: str
    stereo: bool
    partial: Path
    source: Path | None = None
    """Where Asterisk wrote the file when not at ``partial`` (a voicemail message in the
    spool): moved to ``partial`` once closed."""


@dataclass
class CallRecorder:
    """The recordings of one call (implements :class:`~callcontrol.calls.context.
    CallRecordings`); lives in the call's task."""

    service: RecordingService
    ctx: CallContext
    flow: str | None = None
    decisions: dict[str, Decision] = field(default_factory=dict)
    leg_policy: str | None = None
    active: Active | None = None
    count: int = 0
    consent_played: bool = False
    mutes: set[str] = field(default_factory=set)
    digits: dict[str, str] = field(default_factory=dict)
    orphan: bool = False
    """A recording a previous daemon started may still run in Asterisk (an adopted call)."""

    @property
    def settings(self) -> RecordingSettings:
        """The daemon's recording settings."""
        return self.service.settings

    @property
    def recording(self) -> bool:
        """Whether a recording is in progress."""
        return self.active is not None

    @property
    def bridge_kind(self) -> str:
        """``mixing,dtmf_events`` when the leg's policy records or records on demand, so the
        agent's in-call codes reach the daemon (see the port), else ``mixing``."""
        decision = self.decisions.get(self.leg_policy) if self.leg_policy else None
        if decision is not None and (decision.record or decision.on_demand):
            return MIXING_WITH_DTMF
        return MIXING

    # -- policy ------------------------------------------------------------------------------
    def _decision(self, name: str) -> Decision:
        if name not in self.decisions:
            decision = decide(self.settings, name, self.ctx.call_id)
            self.decisions[name] = decision
            self.ctx.log("recording_decision", policy=name, record=decision.record,
                         on_demand=decision.on_demand, reason=decision.reason)
        return self.decisions[name]

    async def leg(self, *, flow: str | None = None, queue: str | None = None,
                  step: str | None = None) -> None:
        """Decide the leg's policy; stop a recording the new leg's policy does not keep;
        play the consent prompt before the first recording."""
        if flow is not None and self.flow is None:
            self.flow = flow
        name = policy_for(self.settings, flow=self.flow, queue=queue, step=step)
        decision = self._decision(name)
        self.leg_policy = name
        if self.active is not None and not decision.record and self.active.policy != name:
            await self.stop("policy")
        if decision.record and self.active is None:
            await self._consent(name)

    async def _consent(self, name: str, wait: bool = True) -> None:
        policy = self.settings.policy(name)
        if self.consent_played or policy is None or policy.consent_prompt is None:
            return
        self.consent_played = True
        self.ctx.log("recording_consent", policy=name, prompt=policy.consent_prompt)
        media, playback = [f"sound:{policy.consent_prompt}"], self.ctx.next_playback_id("consent")
        if wait:
            await play_and_wait(self.ctx, media, playback)
        else:  # outside the call's task: its events are the task's to read
            await self.ctx.telephony.play(self.ctx.channel_id, media, playback)

    def restore(self, timeline: Sequence[TimelineEntry], *, flow: str | None) -> None:
        """An adopted call: the next recording takes the number after the call's last one,
        the policies decided before stay decided (not logged again), a consent played is not
        played again, what muted the recordings still mutes them, and a recording the previous
        daemon left running (its file finished at recovery) is stopped before the next one
        starts."""
        self.flow = self.flow or flow
        open_ids: set[str] = set()
        for entry in timeline:
            data = entry.data
            if entry.kind == "recording_started":
                self.count = max(self.count, int(data.get("n") or 0))
                if "recording_id" in data:  # a voicemail message's entry names no MixMonitor
                    open_ids.add(str(data["recording_id"]))
            elif entry.kind in ("recording_stopped", "recording_failed"):
                open_ids.discard(str(data.get("recording_id")))
            elif entry.kind == "recording_decision":
                name = str(data["policy"])
                self.decisions[name] = Decision(
                    self.ctx.call_id, name, bool(data.get("record")),
                    bool(data.get("on_demand")), str(data.get("reason") or ""))
            elif entry.kind == "recording_consent":
                self.consent_played = True
            elif entry.kind in ("recording_muted", "recording_unmuted"):
                muted = entry.kind == "recording_muted"
                (self.mutes.add if muted else self.mutes.discard)(str(data.get("by")))
        self.orphan = bool(open_ids)

    # -- start and stop ----------------------------------------------------------------------
    async def start(self, by: str = "policy", *, on_demand: bool = False,
                    wait_consent: bool = True) -> bool:
        """Start recording when the leg's policy records (``on_demand``: also when it is an
        ``on_demand`` policy; ``wait_consent``: see the port)."""
        if self.active is not None or self.leg_policy is None:
            return False
        decision = self._decision(self.leg_policy)
        if not (decision.record or (on_demand and decision.on_demand)):
            return False
        if on_demand:
            await self._consent(self.leg_policy, wait_consent)
        return await self._begin(self.leg_policy, by)

    async def _begin(self, policy: str, by: str) -> bool:
        self.count += 1
        stereo = self.settings.channels == "stereo"
        now = utcnow()
        relative = relative_path(self.ctx.call_id, self.count, now)
        paths = self.service.paths
        paths.prepare(relative)
        partial = paths.partial(relative, "raw" if stereo else "wav")
        active = Active(new_id(), self.ctx.call_id, self.ctx.channel_id, relative, policy,
                        stereo, partial)
        self.service.sink.append(RecordingStarted(
            recording_id=active.recording_id, call_id=active.call_id, n=self.count,
            path=relative, policy=policy, format=self.settings.format,
            channels=2 if stereo else 1, at=now))
        self.ctx.log("recording_started", recording_id=active.recording_id, n=self.count,
                     path=relative, policy=policy, by=by)
        self.active = active
        if self.orphan:  # one MixMonitor per channel: a mute must reach the one we record
            self.orphan = False
            with contextlib.suppress(TelephonyError):
                await self.service.port.stop_call_recording(active.channel_id)
        try:
            await self.service.port.start_call_recording(
                active.channel_id, paths.pbx.to_pbx(partial), stereo=stereo)
            if self.mutes:
                await self.service.port.mute_call_recording(active.channel_id, True)
        except TelephonyError as exc:  # the call goes on unrecorded; the row is finished
            self.ctx.log("recording_failed", recording_id=active.recording_id, error=str(exc))
            self.active = None
            with contextlib.suppress(TelephonyError):
                await self.service.port.stop_call_recording(active.channel_id)
            self.service.finish_later(active)
            return False
        return True

    async def stop(self, by: str) -> bool:
        """Stop the recording in progress; its file is finished in the background."""
        active, self.active = self.active, None
        if active is None:
            return False
        with contextlib.suppress(TelephonyError):  # the channel may be gone: the file closed
            await self.service.port.stop_call_recording(active.channel_id)
        self.ctx.log("recording_stopped", recording_id=active.recording_id, by=by)
        self.service.finish_later(active)
        return True

    async def finish(self) -> None:
        """The call ends: stop what is recording."""
        await self.stop("call_end")

    # -- voicemail ---------------------------------------------------------------------------
    def voicemail(self) -> VoicemailMessage:
        """Write the row of a voicemail message (the call's next ``n``, mono, policy
        ``voicemail``) before Asterisk records it into its spool under the returned name."""
        self.count += 1
        now = utcnow()
        relative = relative_path(self.ctx.call_id, self.count, now)
        self.service.paths.prepare(relative)
        message = VoicemailMessage(new_id(), spool_name(relative), self.count, relative,
                                   VOICEMAIL)
        self.service.sink.append(RecordingStarted(
            recording_id=message.recording_id, call_id=self.ctx.call_id, n=message.n,
            path=relative, policy=VOICEMAIL, format=self.settings.format, channels=1, at=now))
        return message

    def voicemail_ended(self, message: VoicemailMessage) -> None:
        """Move the message from the spool into the tree and finish its row (background)."""
        self.service.finish_later(Active(
            message.recording_id, self.ctx.call_id, self.ctx.channel_id, message.path,
            VOICEMAIL, False, self.service.paths.partial(message.path, "wav"),
            spool_file(self.service.spool, message.name)))

    # -- mute --------------------------------------------------------------------------------
    async def mute(self, by: str, reason: str = "") -> bool:
        """Silence the recording until every party that muted it unmutes (a sensitive
        gather and an agent may overlap)."""
        return await self._set_mute(by, reason, True)

    async def unmute(self, by: str, reason: str = "") -> bool:
        """Undo this party's :meth:`mute`."""
        return await self._set_mute(by, reason, False)

    async def _set_mute(self, by: str, reason: str, on: bool) -> bool:
        if on == (by in self.mutes):
            return False
        was = bool(self.mutes)
        (self.mutes.add if on else self.mutes.discard)(by)
        active = self.active
        if active is not None and was != bool(self.mutes):
            try:
                await self.service.port.mute_call_recording(active.channel_id, bool(self.mutes))
            except TelephonyError as exc:
                self.ctx.log("recording_mute_failed", by=by, error=str(exc))
                if self.mutes:  # fail closed: what cannot be silenced is not recorded
                    await self.stop("mute_failed")
                    active = None
        self.ctx.log("recording_muted" if on else "recording_unmuted", by=by, reason=reason,
                     recording_id=active.recording_id if active else None,
                     silent=bool(self.mutes))
        return True

    # -- the agent's in-call codes -----------------------------------------------------------
    async def agent_digit(self, digit: str, by: str) -> None:
        """Follow the agent's digits; act on ``mute_code`` (toggle mute) and
        ``on_demand_code`` (start or stop)."""
        typed = (self.digits.get(by, "") + digit)[-8:]
        self.digits[by] = typed
        if typed.endswith(self.settings.mute_code):
            self.digits[by] = ""
            if by in self.mutes:
                await self.unmute(by, "headset code")
            else:
                await self.mute(by, "headset code")
        elif typed.endswith(self.settings.on_demand_code):
            self.digits[by] = ""
            if self.active is not None:
                await self.stop(by)
            elif not await self.start(by, on_demand=True):
                self.ctx.log("recording_refused", by=by, policy=self.leg_policy)


class RecordingService:
    """The daemon's recordings: a :class:`CallRecorder` per call, the files' last steps
    (tasks owned here, awaited at :meth:`close`), recovery at start and the periodic purge."""

    def __init__(self, settings: RecordingSettings, paths: RecordingPaths,
                 port: CallRecorderPort, sink: InteractionLog, spool: Path) -> None:
        self.settings = settings
        self.paths = paths
        self.port = port
        self.sink = sink
        self.spool = spool
        """Asterisk's ``spool/recording`` as the daemon sees it (voicemail messages)."""
        self._tasks: set[asyncio.Task[None]] = set()

    def for_call(self, ctx: CallContext) -> CallRecorder:
        """A recorder for a new call."""
        return CallRecorder(self, ctx)

    def finish_later(self, active: Active) -> None:
        """Finish ``active``'s file in a task this service owns."""
        task = asyncio.create_task(self._finish(active), name=f"rec-{active.recording_id}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _finish(self, active: Active) -> None:
        try:
            if active.source is None:
                await _closed(active.partial)
            else:
                await _closed(active.source)
                await asyncio.to_thread(bring_in, active.source, active.partial)
            status = await asyncio.to_thread(seal, self.paths, active.relative, active.partial,
                                             active.stereo, "complete")
            if status is None:
                self.sink.append(RecordingMarked(recording_id=active.recording_id,
                                                 status="missing"))
                log.error("recording_file_missing", recording_id=active.recording_id,
                          call_id=active.call_id)
                return
            self.sink.append(_finished(active.recording_id, self.paths, active.relative,
                                       status))
        except Exception:  # a file problem must not be lost silently
            log.exception("recording_finish_failed", recording_id=active.recording_id)

    async def close(self) -> None:
        """Wait for the files being finished."""
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=CLOSE_WAIT_S + 5)

    async def recover(self, engine: AsyncEngine, *, now: datetime | None = None,
                      active: frozenset[str] = frozenset()) -> None:
        """At start: every row a crash left ``recording`` (not in ``active``) becomes its
        recording (``partial``), or ``missing`` when no file was written."""
        for row in await recordings_with_status(engine, "recording"):
            if row.id in active:
                continue
            if row.policy == VOICEMAIL:  # a message still in the spool
                source = spool_file(self.spool, spool_name(row.path))
                await asyncio.to_thread(bring_in, source, self.paths.partial(row.path, "wav"))
            for stereo in (True, False):
                partial = self.paths.partial(row.path, "raw" if stereo else "wav")
                if _size(partial) >= 0:
                    await asyncio.to_thread(seal, self.paths, row.path, partial, stereo,
                                            "partial")
        await recover_rows(engine, self.paths, self.sink, now=now or utcnow(), active=active)

    async def purge_forever(self, engine: AsyncEngine) -> None:
        """Purge what retention expired now, then every ``purge_interval`` seconds."""
        while True:
            try:
                plan = await purge(engine, self.paths, self.settings, now=utcnow())
                log.info("recordings_purged", expired=len(plan.expired),
                         unknown_policies=plan.unknown_policies)
            except Exception:  # the next round tries again
                log.exception("recordings_purge_failed")
            await asyncio.sleep(self.settings.purge_interval)


async def _closed(partial: Path) -> None:
    """Wait until Asterisk stopped writing ``partial`` (its size still for :data:`SETTLE_S`),
    at most :data:`CLOSE_WAIT_S`."""
    loop = asyncio.get_running_loop()
    give_up = loop.time() + CLOSE_WAIT_S
    last, still_since = -1, loop.time()
    while loop.time() < give_up:
        size = _size(partial)
        if size != last:
            last, still_since = size, loop.time()
        elif size >= 0 and loop.time() - still_since >= SETTLE_S:
            return
        await asyncio.sleep(0.05)


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return -1


def seal(paths: RecordingPaths, relative: str, partial: Path, stereo: bool,
         status: Literal["complete", "partial"]) -> Literal["complete", "partial"] | None:
    """Turn the hidden file into the recording at ``relative`` (raw stereo -> WAV; a mono WAV
    is renamed); ``None`` when there is no hidden file and no recording."""
    final = paths.resolve(relative)
    if partial.exists():
        if stereo:
            wav_from_raw(partial, final, channels=2)
            partial.unlink()
        else:
            partial.replace(final)
    return status if final.exists() else None


def _finished(recording_id: str, paths: RecordingPaths, relative: str,
              status: Literal["complete", "partial"]) -> RecordingFinished:
    path = paths.resolve(relative)
    figures = measure(path)
    if not figures.complete:
        status = "partial"
    return RecordingFinished(recording_id=recording_id, status=status,
                             duration_s=figures.duration_s, size_bytes=figures.size_bytes,
                             sha256=figures.sha256, at=datetime.now(UTC))
