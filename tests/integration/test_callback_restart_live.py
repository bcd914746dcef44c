"""A confirmed callback survives a daemon SIGKILL (callcontrol.acd.callback_store), on real
Asterisk with pjsua2 headsets and a customer phone (the ACD test bed, acd_bed.py: queue ``cb``,
agent ``c1``).

The customer calls, presses 1, confirms its number and is hung up; the daemon is SIGKILLed and
started again on the same config, journal and store (as the supervisor of ``make run`` does).
What proves the callback survived: the new daemon puts it back (``callback_restored``), then the
agent is called first, then the customer, and each hears the other's tone; the callback connects
once and the customer's call row closes once. An attempt the SIGKILL cuts counts as failed and
is tried again.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from acd_bed import AGENT_HZ, CALLER_HZ, EXTENSIONS, AcdBed, Row, eventually, running_bed

from callcontrol import audio
from callcontrol.sipua.client import SipPeer
from callcontrol.store.tables import CallRow

pytestmark = [pytest.mark.integration, pytest.mark.postgres,
              pytest.mark.asyncio(loop_scope="module")]


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def bed(tmp_path_factory: pytest.TempPathFactory, module_db_url: str
              ) -> AsyncIterator[AcdBed]:
    async with running_bed(tmp_path_factory.mktemp("cb-restart"),
                           f"cb-restart-{os.getpid()}", module_db_url) as running:
        yield running


async def wait_event(bed: AcdBed, call_id: str, kind: str, count: int = 1,
                     timeout: float = 20.0) -> list[Row]:
    """Wait until the call's timeline has ``count`` events of ``kind``; return them."""

    async def check() -> list[Row] | None:
        rows = [r for r in await bed.timeline(call_id) if r.kind == kind]
        return rows if len(rows) >= count else None

    result: list[Row] = await eventually(check, timeout, f"{count} {kind} of {call_id}")
    return result


async def request_callback(bed: AcdBed, customer: SipPeer) -> str:
    """The customer calls queue ``cb``, presses 1, confirms the number read back and is hung
    up by the daemon; returns the call id of its row."""
    call = await customer.call(bed.uri(EXTENSIONS["cb"]), play_wav=bed.caller_wav)
    confirmed = await customer.wait_for("confirmed", 10, call_id=call)
    rows: list[CallRow] = await eventually(
        lambda: bed.call_rows(sip_call_id=str(confirmed["sip_call_id"])), 10,
        "the customer's row")
    (row,) = rows
    call_id = row.call_id
    await wait_event(bed, call_id, "queue_entered")
    await customer.send_dtmf(call, "1")

    async def read_back() -> bool:
        return any(r.kind == "playback_started" and "sound:you-entered" in r.data["media"]
                   for r in await bed.timeline(call_id))

    await eventually(read_back, 10, "the number read back")
    await customer.send_dtmf(call, "1")
    await customer.wait_for("disconnected", 15, call_id=call)
    await wait_event(bed, call_id, "callback_requested")
    return call_id


async def kill_and_restart(bed: AcdBed) -> None:
    """SIGKILL the daemon and start it again on the same config."""
    bed.daemon.kill()
    await bed.daemon.wait_exit()
    await bed.daemon.start(60)


async def talk_and_check_tones(agent: SipPeer, agent_call: str, customer: SipPeer,
                               customer_call: str) -> None:
    """Two seconds of conversation, the customer hangs up; each heard the other's tone."""
    await asyncio.sleep(2.0)  # the conversation whose audio is checked below
    await customer.hangup(customer_call)
    heard = await customer.wait_for("disconnected", 10, call_id=customer_call)
    agent_heard = await agent.wait_for("disconnected", 10, call_id=agent_call)
    assert audio.has_tone(heard["recording"], AGENT_HZ), "the customer did not hear the agent"
    assert audio.has_tone(agent_heard["recording"], CALLER_HZ), "the agent did not hear"


async def closed_once(bed: AcdBed, call_id: str) -> list[str]:
    """The customer's row is closed once, as ``callback_requested``; its timeline's kinds."""
    rows = await bed.call_rows(call_id=call_id)
    assert len(rows) == 1 and rows[0].outcome == "callback_requested" and rows[0].ended_at, rows
    kinds = [r.kind for r in await bed.timeline(call_id)]
    assert kinds.count("call_ended") == 1, kinds
    assert kinds.count("callback_requested") == 1, kinds
    return kinds


async def test_pending_callback_survives_a_sigkill_and_connects_agent_then_customer(
    bed: AcdBed,
) -> None:
    await bed.set_state("c1", "paused")  # staffed, nobody free: the customer waits
    async with bed.caller(register=True) as customer:
        call_id = await request_callback(bed, customer)
        await bed.set_state("c1", "logged_out")

        await kill_and_restart(bed)
        (restored,) = await wait_event(bed, call_id, "callback_restored")
        assert restored.data["attempts"] == 0 and restored.data["position"] == 1
        assert (await bed.queue("cb"))["callbacks"] == 1
        assert (await bed.agent("c1"))["state"] == "logged_out"

        async with bed.headset("c1") as c1:
            await bed.action("c1", "login")  # an agent logs in: the callback is served
            agent_leg = await c1.wait_for("incoming", 15)  # the agent first ...
            assert not customer.events("incoming")
            await c1.wait_for("confirmed", 10, call_id=agent_leg["call_id"])
            customer_leg = await customer.wait_for("incoming", 15)  # ... then the customer
            await customer.wait_for("confirmed", 10, call_id=customer_leg["call_id"])
            await talk_and_check_tones(c1, agent_leg["call_id"], customer,
                                       customer_leg["call_id"])
            await bed.wait_state("c1", "wrap_up", "available")

    await wait_event(bed, call_id, "agent_disconnected")
    kinds = await closed_once(bed, call_id)
    assert kinds.count("callback_connected") == 1, kinds
    assert kinds.count("callback_attempt") == 1, kinds
    assert "callback_failed" not in kinds and "callback_retry" not in kinds, kinds
    assert (await bed.queue("cb"))["callbacks"] == 0
    await bed.set_state("c1", "logged_out")


async def test_attempt_cut_by_a_sigkill_counts_as_failed_and_is_tried_again(
    bed: AcdBed, tmp_path: Path,
) -> None:
    async with bed.headset("c1") as c1, bed.caller(register=True) as customer:
        await bed.set_state("c1", "paused")
        await customer.set_auto_answer(False)  # the customer's phone rings until answered
        call_id = await request_callback(bed, customer)
        await bed.action("c1", "unpause")
        first_agent = await c1.wait_for("incoming", 15)
        ringing = await customer.wait_for("incoming", 15)  # the customer's phone rings ...
        await wait_event(bed, call_id, "callback_attempt")

        await kill_and_restart(bed)  # ... when the daemon dies
        await customer.wait_for("disconnected", 15, call_id=ringing["call_id"])
        await c1.wait_for("disconnected", 15, call_id=first_agent["call_id"])
        (retry,) = await wait_event(bed, call_id, "callback_retry")
        assert (retry.data["reason"], retry.data["attempts"]) == ("interrupted", 1)

        agent_leg = await c1.wait_for("incoming", 20)  # after the retry delay: again
        await c1.wait_for("confirmed", 10, call_id=agent_leg["call_id"])
        customer_leg = await customer.wait_for("incoming", 15)
        await customer.answer(customer_leg["call_id"], play_wav=bed.caller_wav,
                              record_wav=tmp_path / "customer.wav")
        await customer.wait_for("confirmed", 10, call_id=customer_leg["call_id"])
        await talk_and_check_tones(c1, agent_leg["call_id"], customer,
                                   customer_leg["call_id"])

    await wait_event(bed, call_id, "agent_disconnected")
    kinds = await closed_once(bed, call_id)
    assert kinds.count("callback_connected") == 1, kinds
    attempts = [r.data["attempt"] for r in await bed.timeline(call_id)
                if r.kind == "callback_attempt"]
    assert attempts == [1, 2], attempts
    assert "callback_failed" not in kinds, kinds
    await bed.set_state("c1", "logged_out")
