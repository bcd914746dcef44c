"""The PJSIP objects of agent headsets added through the HTTP API, without editing pjsip.conf.

The rendered ``pjsip.conf`` ends with ``#tryinclude pjsip_agents_api.conf``
(:data:`~callcontrol.pbx.render.AGENTS_INCLUDE`). :class:`AgentsInclude` writes that file
(mode 0600: it holds digest passwords, which Asterisk needs in clear) into the instance's config
folder with the same endpoint/auth/aor templates the config's agents use, then asks Asterisk to
reload res_pjsip. The file lives beside the rendered config and survives an Asterisk restart;
re-rendering the instance's config leaves it alone.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path

from callcontrol.errors import ConfigError
from callcontrol.pbx.render import AGENTS_INCLUDE
from callcontrol.pbx.settings import SipAccount
from callcontrol.private_files import write_private

SIP_NAME = re.compile(r"^[A-Za-z0-9_.+-]+$")
"""What an endpoint name may hold (the same rule as :meth:`PbxSettings.check`)."""
UNSAFE_SECRET = re.compile(r"[;\r\n\[\]\s]")
"""Characters a password may not hold in an Asterisk config file (whitespace included: the
parser would trim it)."""


def check_account(account: SipAccount) -> None:
    """Raise :class:`ConfigError` when ``account`` cannot go safely into pjsip.conf."""
    for value in (account.username, account.context):
        if value is not None and not SIP_NAME.match(value):
            raise ConfigError(f"{value!r}: use letters, digits and '_.+-' only")
    if not account.password or UNSAFE_SECRET.search(account.password):
        raise ConfigError(f"the password of {account.username} is empty or holds ';', '[', "
                          "']' or white space")


def render_agents_include(accounts: Sequence[SipAccount]) -> str:
    """The text of the include file for ``accounts`` (checked like the config's accounts)."""
    lines = ["; callcontrol: agent headsets managed through the HTTP API (written by the daemon;",
             "; do not edit: changes are lost at the next write)"]
    for account in sorted(accounts, key=lambda a: a.username):
        check_account(account)
        name = account.username
        lines += [
            "",
            f"[{name}](callcontrol-endpoint)",
            f"context = {account.context or 'callcontrol-agents'}",
            f"auth = {name}",
            f"aors = {name}",
            "",
            f"[{name}](callcontrol-auth)",
            f"username = {name}",
            f"password = {account.password}",
            "",
            f"[{name}](callcontrol-aor)",
        ]
    return "\n".join(lines) + "\n"


class AgentsInclude:
    """Writes the include file into ``etc_dir`` (host side) and reloads res_pjsip.

    ``reload`` asks Asterisk to reload res_pjsip (the daemon sends AMI ``ModuleReload``).
    """

    def __init__(self, etc_dir: Path, reload: Callable[[], Awaitable[object]]) -> None:
        self.path = etc_dir / AGENTS_INCLUDE
        self._reload = reload

    def write(self, accounts: Sequence[SipAccount]) -> bool:
        """Write the file for ``accounts``; ``True`` when its text changed."""
        text = render_agents_include(accounts)
        try:
            if self.path.read_text() == text:
                return False
        except OSError:
            pass
        self.path.parent.mkdir(parents=True, exist_ok=True)
        write_private(self.path, text)
        return True

    async def apply(self, accounts: Sequence[SipAccount], *, force: bool = False) -> None:
        """Write the file and reload res_pjsip when it changed (or when ``force``)."""
        if self.write(accounts) or force:
            await self._reload()
