"""Asterisk for callcontrol: provision it, render the project's config, run instances.

provision.py  find or build Asterisk 22 (native, or a Debian sid chroot) -> Launcher
ports.py      free ports for an instance (SIP, HTTP/ARI, AMI, an RTP block)
settings.py   what an instance is made of (PbxSettings, SipAccount, PbxDirs)
render.py     config/asterisk/*.j2 + dialplan/extensions.conf -> an instance's etc folder
paths.py      PathMap: host <-> Asterisk paths (chroot and bind mounts)
instance.py   AsteriskInstance: start / stop / restart / cli
service.py    the instance a callcontrol Config describes (start_for_config)
__main__.py   python -m callcontrol.pbx start|stop|status|render
"""

from callcontrol.pbx.instance import AsteriskInstance, PbxStartError
from callcontrol.pbx.paths import PathMap
from callcontrol.pbx.ports import PbxPorts, allocate_ports
from callcontrol.pbx.provision import Launcher, provision
from callcontrol.pbx.service import instance_for_config, settings_from_config, start_for_config
from callcontrol.pbx.settings import PbxDirs, PbxSettings, SipAccount

__all__ = [
    "AsteriskInstance",
    "Launcher",
    "PathMap",
    "PbxDirs",
    "PbxPorts",
    "PbxSettings",
    "PbxStartError",
    "SipAccount",
    "allocate_ports",
    "instance_for_config",
    "provision",
    "settings_from_config",
    "start_for_config",
]
