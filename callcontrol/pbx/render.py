"""Render the project's Asterisk config templates for one instance.

One set of templates (``config/asterisk/*.j2``) and one dialplan (``dialplan/extensions.conf``)
serve ``make run``, the test fixtures and ``asterisk-docker/``. :func:`render_config` is pure
(settings in, file texts out); :func:`write_config` puts them in a folder with the dialplan and,
when the Asterisk package ships no music on hold, a generated tone for the ``default`` class.
"""

from __future__ import annotations

import math
import re
import struct
import wave
from pathlib import Path

import jinja2

from callcontrol.errors import ConfigError
from callcontrol.pbx.settings import AMI_READ, AMI_WRITE, PbxDirs, PbxSettings
from callcontrol.private_files import write_private

PROJECT = Path(__file__).resolve().parents[2]
TEMPLATES = PROJECT / "config" / "asterisk"
DIALPLAN = PROJECT / "dialplan" / "extensions.conf"
DIALPLAN_NAME = "callcontrol-dialplan.conf"
MOH_TONE = "callcontrol-tone.wav"
# Included by pjsip.conf: the headsets of agents managed through the HTTP API (agents_conf.py).
AGENTS_INCLUDE = "pjsip_agents_api.conf"

UNSAFE_LINE = re.compile(r"[;\r\n]")
"""What would end a value in an Asterisk config line (';' starts a comment)."""

# Modules that would open ports or talk to hardware we do not use (ENVIRONMENT.md).
NOLOAD = (
    "chan_sip.so",
    "chan_iax2.so",
    "chan_mgcp.so",
    "chan_skinny.so",
    "chan_unistim.so",
    "chan_motif.so",
    "chan_alsa.so",
    "chan_oss.so",
    "chan_console.so",
    "chan_ooh323.so",
    "chan_mobile.so",
    "chan_dahdi.so",
    "res_xmpp.so",
    "pbx_dundi.so",
    "res_hep.so",
    "res_hep_pjsip.so",
    "res_hep_rtcp.so",
    "res_phoneprov.so",
    "res_pjsip_phoneprov_provider.so",
    "res_snmp.so",
    "res_smdi.so",
    "res_stun_monitor.so",
    "res_corosync.so",
    "cdr_radius.so",
    "cel_radius.so",
    "res_statsd.so",
    "res_prometheus.so",
    # unconfigured here; they would only fill the log with load errors
    "app_voicemail_odbc.so",
    "app_voicemail_imap.so",
    "pbx_lua.so",
    "pbx_ael.so",
    "res_config_pgsql.so",
    "cdr_pgsql.so",
    "cel_pgsql.so",
    "cdr_tds.so",
    "cel_tds.so",
    "res_calendar.so",
    "app_festival.so",
    "app_alarmreceiver.so",
)


def render_config(
    settings: PbxSettings, dirs: PbxDirs, moh_dir: str, templates: Path = TEMPLATES
) -> dict[str, str]:
    """Return ``{file name: text}`` for every template; paths inside are PBX-side paths."""
    settings.check()
    for path in (str(dirs.base), moh_dir):
        if UNSAFE_LINE.search(path):
            raise ConfigError(f"{path!r}: a folder Asterisk reads may not hold ';' or newlines")
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(templates)),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        autoescape=False,
    )
    values = {
        "name": settings.name,
        "dirs": dirs,
        "ports": settings.ports,
        "bind": settings.bind,
        "ari_user": settings.ari_user,
        "ari_password": settings.ari_password,
        "ami_user": settings.ami_user,
        "ami_password": settings.ami_password,
        "ami_permit": settings.ami_networks(),
        "ami_read": AMI_READ,
        "ami_write": AMI_WRITE,
        "http_tls": settings.http_tls,
        "app": settings.app,
        "agents": settings.agents,
        "callers": settings.callers,
        "overflow_dial": settings.overflow_dial or "",
        "overflow_timeout": settings.overflow_timeout,
        "fallback_prompt": settings.fallback_prompt,
        "moh_dir": moh_dir,
        "noload": NOLOAD,
        "dialplan_file": DIALPLAN_NAME,
        "agents_include": AGENTS_INCLUDE,
        "bench": settings.bench,
    }
    files: dict[str, str] = {}
    for template in sorted(templates.glob("*.j2")):
        files[template.name.removesuffix(".j2")] = env.get_template(template.name).render(values)
    return files


def write_config(files: dict[str, str], etc_dir: Path, dialplan: Path = DIALPLAN) -> None:
    """Write rendered files and the project dialplan into ``etc_dir``, each created with mode
    0600 (they hold secrets) and never readable by others, not even while being written."""
    etc_dir.mkdir(parents=True, exist_ok=True)
    for name, text in {**files, DIALPLAN_NAME: dialplan.read_text()}.items():
        write_private(etc_dir / name, text)


def write_moh_tone(path: Path, seconds: float = 8.0, rate: int = 8000) -> None:
    """Write a soft two-note chime (8 kHz mono WAV) for the ``default`` music-on-hold class."""
    if path.exists():
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    frames = bytearray()
    notes = (523.25, 659.25, 783.99, 659.25)  # C5 E5 G5 E5, one per 2 s, faded in and out
    total = int(seconds * rate)
    per_note = total // len(notes)
    for i in range(total):
        freq = notes[min(i // per_note, len(notes) - 1)]
        pos = (i % per_note) / per_note
        envelope = math.sin(math.pi * pos) ** 2
        sample = 0.25 * envelope * math.sin(2 * math.pi * freq * i / rate)
        frames += struct.pack("<h", int(sample * 32767))
    tmp = path.with_suffix(".tmp")
    with wave.open(str(tmp), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(bytes(frames))
    tmp.replace(path)
