#!/bin/sh
# Render config/asterisk/*.j2 + dialplan/extensions.conf for this container, then run Asterisk
# in the foreground (same command line as a native run: -f -n -g -C <instance>/etc/asterisk.conf).
set -eu
CONFIG=${CALLCONTROL_CONFIG:-/etc/callcontrol/callcontrol.yaml}
NAME=${CALLCONTROL_INSTANCE:-callcontrol}
BASE=/srv/callcontrol/$NAME
python3 -m callcontrol.pbx render --config "$CONFIG" --out "$BASE" --base "$BASE"
exec asterisk -f -n -g -C "$BASE/etc/asterisk.conf"
