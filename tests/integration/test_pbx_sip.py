"""Real SIP (sipp) against the test instance: auth is enforced, calls reach Stasis, and the
dialplan fallback answers when no app is connected or the app lets the call go."""

from __future__ import annotations

import asyncio
import base64
import json
import time
import uuid
from pathlib import Path

import aiohttp
import pytest

from callcontrol.pbx.ports import free_port
from callcontrol_testing.testbed import PbxTestbed

INVITE = """
  <send retrans="500">
    <![CDATA[
      INVITE sip:[service]@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: sipp <sip:[field0]@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
      To: <sip:[service]@[remote_ip]:[remote_port]>
      Call-ID: [call_id]
      CSeq: [cseq] INVITE
      Contact: sip:[field0]@[local_ip]:[local_port]
      Max-Forwards: 70
      %AUTH%
      Content-Type: application/sdp
      Content-Length: [len]

      v=0
      o=user1 53655765 2353687637 IN IP[local_ip_type] [local_ip]
      s=-
      c=IN IP[media_ip_type] [media_ip]
      t=0 0
      m=audio [media_port] RTP/AVP 0
      a=rtpmap:0 PCMU/8000
    ]]>
  </send>
"""

ACK_ERROR = """
  <send>
    <![CDATA[
      ACK sip:[service]@[remote_ip]:[remote_port] SIP/2.0
      [last_Via:]
      From: sipp <sip:[field0]@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
      [last_To:]
      Call-ID: [call_id]
      CSeq: [cseq] ACK
      Max-Forwards: 70
      Content-Length: 0
    ]]>
  </send>
"""

# Challenged, then digest auth with [authentication] (-au/-ap): the first INVITE has no
# credentials and its 401 is acknowledged; the INVITE sent again carries them.
CHALLENGED = f"""{INVITE.replace("%AUTH%", "")}
  <recv response="100" optional="true"/>
  <recv response="401" auth="true"/>
{ACK_ERROR}
{INVITE.replace("%AUTH%", "[authentication]")}
  <recv response="100" optional="true"/>"""

# No credentials at all: the only acceptable answers are a challenge or a refusal.
UNAUTHENTICATED = f"""<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="unauthenticated">
{INVITE.replace("%AUTH%", "")}
  <recv response="100" optional="true"/>
  <recv response="403" optional="true" next="ack"/>
  <recv response="407" optional="true" next="ack"/>
  <recv response="401" next="ack"/>
  <label id="ack"/>
{ACK_ERROR}
</scenario>
"""

# Digest auth with [authentication] (-au/-ap), then a call that the server ends with BYE.
AUTHENTICATED = f"""<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="authenticated call, server hangs up">
{CHALLENGED}
  <recv response="180" optional="true"/>
  <recv response="183" optional="true"/>
  <recv response="200" rrs="true"/>
  <send>
    <![CDATA[
      ACK [next_url] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: sipp <sip:[field0]@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
      [last_To:]
      [routes]
      Call-ID: [call_id]
      CSeq: [cseq] ACK
      Max-Forwards: 70
      Content-Length: 0
    ]]>
  </send>
  <recv request="BYE" timeout="40000"/>
  <send>
    <![CDATA[
      SIP/2.0 200 OK
      [last_Via:]
      [last_From:]
      [last_To:]
      [last_Call-ID:]
      [last_CSeq:]
      Content-Length: 0
    ]]>
  </send>
</scenario>
"""

# Digest auth with a password the server must refuse: a second challenge or a 403.
REFUSED = f"""<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="wrong password">
{CHALLENGED}
  <recv response="403" optional="true" next="ack"/>
  <recv response="401" next="ack"/>
  <label id="ack"/>
{ACK_ERROR}
</scenario>
"""

pytestmark = pytest.mark.integration


def _write_scenario(work: Path, scenario: str, user: str) -> None:
    work.mkdir(parents=True, exist_ok=True)
    (work / "scenario.xml").write_text(scenario)
    (work / "users.csv").write_text(f"SEQUENTIAL\n{user};\n")


def _error_logs(work: Path) -> str:
    return "".join(p.read_text(errors="replace") for p in work.glob("*errors.log"))


async def _sipp(
    pbx: PbxTestbed, work: Path, scenario: str, user: str, password: str | None, call_id: str
) -> tuple[int, str, float]:
    """Run one sipp call to extension 100; return (exit code, output, seconds)."""
    _write_scenario(work, scenario, user)
    argv = [
        "sipp",
        f"{pbx.sip_host}:{pbx.sip_port}",
        "-sf",
        "scenario.xml",
        "-inf",
        "users.csv",
        "-s",
        "100",
        "-i",
        "127.0.0.1",
        "-p",
        str(free_port(udp_too=True)),
        "-mp",
        str(free_port(udp_too=True)),
        "-m",
        "1",
        "-l",
        "1",
        "-nostdin",
        "-timeout",
        "60s",
        "-timeout_error",
        "-cid_str",
        call_id,
        "-trace_err",
    ]
    if password is not None:
        argv += ["-au", user, "-ap", password]
    started = time.monotonic()
    proc = await asyncio.create_subprocess_exec(
        *argv, cwd=work, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    out, _ = await asyncio.wait_for(proc.communicate(), 90)
    errors = _error_logs(work)
    return (
        proc.returncode or 0,
        out.decode(errors="replace")[-2000:] + errors,
        (time.monotonic() - started),
    )


async def _active_calls(pbx: PbxTestbed) -> int:
    out = await pbx.instance.cli("core show channels count")
    for line in out.splitlines():
        if "active call" in line:
            return int(line.split()[0])
    raise AssertionError(out)


@pytest.mark.parametrize("user", ["nobody", "caller"])
async def test_invite_without_credentials_is_challenged_and_no_call_is_made(
    pbx: PbxTestbed, tmp_path: Path, user: str
) -> None:
    code, out, _ = await _sipp(pbx, tmp_path, UNAUTHENTICATED, user, None, "unauth-%u@%s")
    assert code == 0, out
    assert await _active_calls(pbx) == 0


async def test_wrong_password_is_refused(pbx: PbxTestbed, tmp_path: Path) -> None:
    code, out, _ = await _sipp(
        pbx, tmp_path, REFUSED, pbx.caller.username, "wrong-password", "wrong-%u@%s"
    )
    assert code == 0, out  # a 200 OK here would be an unexpected message: sipp fails
    assert await _active_calls(pbx) == 0


async def test_call_with_no_app_connected_gets_the_fallback(
    pbx: PbxTestbed, tmp_path: Path
) -> None:
    code, out, seconds = await _sipp(
        pbx, tmp_path, AUTHENTICATED, pbx.caller.username, pbx.caller.password, "fb-%u@%s"
    )
    assert code == 0, out  # 200 OK, then a BYE from Asterisk
    # im-sorry + all-circuits-busy-now + please-try-call-later + goodbye last about 5 s:
    # the caller heard the prompt before the hangup (no instant hangup, no dead air).
    assert 3.5 < seconds < 30, out


async def test_call_reaches_stasis_with_the_call_id_and_continue_runs_the_fallback(
    pbx: PbxTestbed, tmp_path: Path
) -> None:
    token = base64.b64encode(f"{pbx.ari_user}:{pbx.ari_password}".encode()).decode()
    headers = {"Authorization": f"Basic {token}"}
    marker = uuid.uuid4().hex
    async with (
        aiohttp.ClientSession(headers=headers) as http,
        http.ws_connect(f"{pbx.ari_url}/ari/events?app={pbx.app}") as ws,
    ):
        call = asyncio.create_task(
            _sipp(
                pbx,
                tmp_path,
                AUTHENTICATED,
                pbx.caller.username,
                pbx.caller.password,
                f"{marker}-%u@%s",
            )
        )
        try:
            async with asyncio.timeout(15):
                while True:
                    event = json.loads((await ws.receive()).data)
                    if event["type"] == "StasisStart":
                        break
            assert event["args"] == ["inbound", f"{marker}-1@127.0.0.1"]
            assert event["channel"]["dialplan"]["exten"] == "100"
            channel = event["channel"]["id"]
            async with http.post(f"{pbx.ari_url}/ari/channels/{channel}/continue") as resp:
                assert resp.status == 204
            code, out, _ = await asyncio.wait_for(call, 60)
        finally:
            if not call.done():
                call.cancel()
    assert code == 0, out  # answered by the fallback, then BYE from Asterisk
