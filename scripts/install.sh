#!/usr/bin/env bash
# Install what callcontrol needs on a fresh Debian 12 machine (idempotent, quiet when done):
# Debian packages (sipp, sox, espeak-ng, debootstrap), the Python package with its test extras,
# and Asterisk 22 (scripts/provision-asterisk.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}

need_apt=()
command -v sipp >/dev/null || need_apt+=(sip-tester)
command -v sox >/dev/null || need_apt+=(sox)
command -v espeak-ng >/dev/null || need_apt+=(espeak-ng)
command -v debootstrap >/dev/null || need_apt+=(debootstrap)
if [ ${#need_apt[@]} -gt 0 ]; then
    if [ "$(id -u)" != 0 ]; then echo "install.sh: need root to apt-get install ${need_apt[*]}" >&2; exit 1; fi
    echo "install.sh: apt-get install ${need_apt[*]}" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi

stamp=var/.installed-$(sha256sum pyproject.toml | cut -c1-16)
if [ ! -f "$stamp" ] || ! "$PY" -c 'import callcontrol, pjsua2' 2>/dev/null; then
    echo "install.sh: pip install -e .[test]" >&2
    "$PY" -m pip install -q --disable-pip-version-check -e '.[test]'
    mkdir -p var && rm -f var/.installed-* && touch "$stamp"
fi

bash scripts/provision-asterisk.sh >/dev/null
