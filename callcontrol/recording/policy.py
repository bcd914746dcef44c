"""The recording policy: named policies, chosen per queue and per flow, a step may override.

A policy says whether a call leg is recorded (``record``), how long its files are kept
(``retention_days``) and which prompt asks for consent before the first recording of a call::

    all          every call
    none         no call
    {percent: N} N % of calls, sampled: decided once per call from the call id (deterministic,
                 so every leg and every restart of the same call decides the same way)
    on_demand    only when an agent or supervisor starts it

Policies are named, so a recording row can carry the name of the policy that caused it and
``recordings purge`` finds that policy's retention by name. The settings will be embedded in
:class:`callcontrol.config.Config` as one section::

    class Config(_Model):
        ...
        recording: RecordingSettings = RecordingSettings()

which reads, in the config file::

    recording:
      channels: stereo               # caller left, agent(s) right; or mono
      policies:
        quality: {record: all, retention_days: 90, consent_prompt: recording-notice}
        sampled: {record: {percent: 20}, retention_days: 30}
        asked:   {record: on_demand, retention_days: 365}
      default: none                  # the built-in policy that records nothing
      flows:  {hotline: sampled}
      queues: {sales: quality, billing: asked}

and a flow's ``queue`` or ``dial`` step names a policy to override both (``recording: asked``).
Which policy applies is :func:`policy_for` (a pure function); whether it records this call is
:func:`decide`.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from callcontrol.logging import get_logger

log = get_logger(__name__)

NONE = "none"
"""The built-in policy that records nothing (the default default)."""

Mode = Literal["all", "none", "on_demand"]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)


class Sampled(_Model):
    """``{percent: N}``: record N % of calls, chosen from the call id."""

    percent: int = Field(ge=0, le=100)
    """Share of calls recorded, 0 to 100."""


class RecordingPolicy(_Model):
    """One named recording policy."""

    record: Mode | Sampled
    """``all``, ``none``, ``on_demand`` or ``{percent: N}``."""
    retention_days: int | None = Field(None, ge=1)
    """Days a recording is kept (counted from its start); none: kept until deleted by hand."""
    consent_prompt: str | None = Field(None, min_length=1)
    """Sound played to the caller before the first recording of a call (none: no prompt)."""


class RecordingSettings(_Model):
    """The ``recording`` section: the policies and where each applies."""

    channels: Literal["stereo", "mono"] = "stereo"
    """``stereo``: the caller on the left channel, the agent(s) on the right; ``mono``: a mix."""
    policies: dict[str, RecordingPolicy] = {}
    """Named policies (``none`` is built in and cannot be redefined)."""
    default: str = NONE
    """The policy of a call leg no flow, queue or step names."""
    flows: dict[str, str] = {}
    """Flow name -> policy name, for the IVR leg (and queue legs of a queue that names none)."""
    queues: dict[str, str] = {}
    """Queue name -> policy name, for the leg with an agent."""

    @model_validator(mode="after")
    def _names_exist(self) -> RecordingSettings:
        if NONE in self.policies:
            raise ValueError(f"policy name {NONE!r} is built in; choose another name")
        refs = [("default", self.default)]
        refs += [(f"flows.{k}", v) for k, v in self.flows.items()]
        refs += [(f"queues.{k}", v) for k, v in self.queues.items()]
        for where, name in refs:
            if name != NONE and name not in self.policies:
                known = ", ".join([NONE, *sorted(self.policies)])
                raise ValueError(f"{where}: unknown recording policy {name!r}; known: {known}")
        return self

    def policy(self, name: str) -> RecordingPolicy | None:
        """The policy called ``name`` (``none`` included), or ``None`` when there is none."""
        if name == NONE:
            return RecordingPolicy(record="none")
        return self.policies.get(name)


def policy_for(
    settings: RecordingSettings,
    *,
    flow: str | None = None,
    queue: str | None = None,
    step: str | None = None,
) -> str:
    """The name of the policy for a call leg: the step's override, else the queue's, else the
    flow's, else the default. ``step`` is the policy a flow's ``queue``/``dial`` step names."""
    if step is not None:
        if settings.policy(step) is None:
            raise ValueError(f"unknown recording policy {step!r}")
        return step
    if queue is not None and queue in settings.queues:
        return settings.queues[queue]
    if flow is not None and flow in settings.flows:
        return settings.flows[flow]
    return settings.default


def sample_bucket(call_id: str) -> int:
    """The call's sampling bucket, 0..99, derived from its id alone (stable across restarts)."""
    digest = hashlib.sha256(call_id.encode()).digest()
    return int.from_bytes(digest[:8], "big") % 100


@dataclass(frozen=True)
class Decision:
    """Whether a call leg is recorded under a policy, and why."""

    call_id: str
    policy: str
    record: bool
    on_demand: bool
    reason: str


def decide(settings: RecordingSettings, policy_name: str, call_id: str) -> Decision:
    """Decide once whether ``call_id`` is recorded under ``policy_name``; the decision is
    logged (``recording_decision``). The same call and policy always decide the same."""
    policy = settings.policy(policy_name)
    if policy is None:
        raise ValueError(f"unknown recording policy {policy_name!r}")
    mode = policy.record
    if isinstance(mode, Sampled):
        bucket = sample_bucket(call_id)
        record = bucket < mode.percent
        reason = f"sampled: bucket {bucket} {'<' if record else '>='} {mode.percent}%"
    else:
        record = mode == "all"
        reason = mode
    decision = Decision(call_id, policy_name, record, mode == "on_demand", reason)
    log.info("recording_decision", call_id=call_id, policy=policy_name, record=record,
             on_demand=decision.on_demand, reason=reason)
    return decision
