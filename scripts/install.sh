#!/usr/bin/env bash
# Install what callcontrol needs on a fresh Debian 12 machine (idempotent, quiet when done):
# Debian packages (sipp, sox, espeak-ng, debootstrap, postgresql for the tests' private database
# servers), the Python package with its test extras (pip install -e .[test]), and Asterisk 22
# (scripts/provision-asterisk.sh).
#
# pip runs when callcontrol or pjsua2 cannot be imported, or when this checkout is the installed
# one and pyproject.toml changed since the last install. A callcontrol installed from another
# checkout is left alone (make run and the tests run this checkout's code via PYTHONPATH), so a
# copy of the repo never takes the machine's install away from the developer's clone.
set -euo pipefail
cd "$(dirname "$0")/.."
HERE=$(pwd -P)
PY=${PYTHON:-python3}

need_apt=()
command -v sipp >/dev/null || need_apt+=(sip-tester)
command -v sox >/dev/null || need_apt+=(sox)
command -v espeak-ng >/dev/null || need_apt+=(espeak-ng)
command -v debootstrap >/dev/null || need_apt+=(debootstrap)
command -v curl >/dev/null || need_apt+=(curl)
command -v gdb >/dev/null || need_apt+=(gdb)  # native stacks of a crashed SIP peer
# Debian's postgresql package puts the server in /usr/lib/postgresql/<major>/bin, whatever the
# current major version is (callcontrol_testing.postgres finds it there).
compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null || need_apt+=(postgresql)
if [ ${#need_apt[@]} -gt 0 ]; then
    if [ "$(id -u)" != 0 ]; then echo "install.sh: need root to apt-get install ${need_apt[*]}" >&2; exit 1; fi
    echo "install.sh: apt-get install ${need_apt[*]}" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi

# Where the installed callcontrol lives (checked from / so this folder is not on sys.path).
installed=$(cd / && "$PY" -c '
import pathlib, callcontrol, pjsua2
print(pathlib.Path(callcontrol.__file__).resolve().parents[1])' 2>/dev/null || true)
stamp=var/.installed-$(sha256sum pyproject.toml | cut -c1-16)
if [ -z "$installed" ] || { [ "$installed" = "$HERE" ] && [ ! -f "$stamp" ]; }; then
    echo "install.sh: pip install -e .[test]" >&2
    "$PY" -m pip install -q --disable-pip-version-check -e '.[test]'
    mkdir -p var && rm -f var/.installed-* && touch "$stamp"
fi

bash scripts/provision-asterisk.sh >/dev/null
