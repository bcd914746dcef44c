"""The recording policy: which policy applies to a call leg, and whether it records this call.

A policy (``recording.policies`` in the config, :class:`callcontrol.config.RecordingPolicy`)
says whether a call leg is recorded (``record``), how long its files are kept
(``retention_days``) and which prompt asks for consent before the first recording of a call::

    all          every call
    none         no call (built in)
    {percent: N} N % of calls, sampled: decided once per call from the call id (deterministic,
                 so every leg and every restart of the same call decides the same way)
    on_demand    only when an agent or supervisor starts it

Policies are named, so a recording row carries the name of the policy that caused it and
``recordings purge`` finds that policy's retention by name. In the config::

    recording:
      channels: stereo               # caller left, agent(s) right; or mono
      policies:
        quality: {record: all, retention_days: 90, consent_prompt: recording-notice}
        sampled: {record: {percent: 20}, retention_days: 30}
        asked:   {record: on_demand, retention_days: 365}
      default: none
      flows:  {hotline: sampled}
      queues: {sales: quality, billing: asked}

and a flow's ``queue`` or ``dial`` step names a policy to override both (``recording: asked``).
Which policy applies is :func:`policy_for` (a pure function); whether it records this call is
:func:`decide`.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from callcontrol.config import (
    NO_RECORDING,
    RecordingPolicy,
    RecordingSettings,
    SampledRecording,
)
from callcontrol.logging import get_logger

log = get_logger(__name__)

NONE = NO_RECORDING
"""The built-in policy that records nothing (the default default)."""
Sampled = SampledRecording

__all__ = ["NONE", "Decision", "RecordingPolicy", "RecordingSettings", "Sampled", "decide",
           "policy_for", "sample_bucket"]


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
