"""Shared fixtures for integration tests: a real Asterisk 22 per test session.

``pbx`` (session scope) is a :class:`callcontrol.pbx.testbed.PbxTestbed`: one isolated Asterisk
on free ports, next to any ``make run`` instance, with passwords generated for this run::

    pbx.config          a full callcontrol Config pointing at this Asterisk (ARI/AMI secrets
                        as files, SQLite store, journal and recordings under pbx.work_dir);
                        derive variants with pbx.config.model_copy(update=...)
    pbx.ari_url         "http://127.0.0.1:PORT" (ARI under /ari); pbx.ari_user, pbx.ari_password
    pbx.app             the Stasis app name the dialplan hands calls to ("callcontrol")
    pbx.ami_port        AMI on 127.0.0.1; pbx.ami_user, pbx.ami_password
    pbx.sip_host, pbx.sip_port      where SIP peers send (UDP)
    pbx.caller          SipAccount(username, password) allowed to call into callcontrol-inbound
                        (any extension, e.g. 100, goes to Stasis(app, inbound, CALL-ID))
    pbx.agents          {"a1": SipAccount("agent-a1", ...), "a2": ...}: agent headsets
                        (context callcontrol-agents: *45, *46 and the hotline numbers)
    pbx.paths           PathMap: to_pbx(host_path) / to_host(pbx_path)
    pbx.instance        the AsteriskInstance: await pbx.instance.cli("..."), .restart(), .pid,
                        .spool_recording_dir (where ARI recordings land, host side)

The fixture is synchronous, so both sync and async tests (any loop scope) can use it. A test
that restarts or stops Asterisk must leave it running again (``await pbx.instance.start()``).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator

import pytest

from callcontrol.pbx.testbed import PbxTestbed, start_testbed


@pytest.fixture(scope="session")
def pbx(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PbxTestbed]:
    """One isolated Asterisk for the test session (see the module docstring)."""
    work_dir = tmp_path_factory.mktemp("pbx")
    loop = asyncio.new_event_loop()
    try:
        testbed = loop.run_until_complete(start_testbed(work_dir, f"test-{os.getpid()}"))
        try:
            yield testbed
        finally:
            loop.run_until_complete(testbed.stop())
    finally:
        loop.close()
