#!/usr/bin/env bash
# `make run` / `make stop`: the demo call center (Asterisk + supervised daemon, SQLite) in the
# background, state under the git-ignored var/.
#
#   run-demo.sh start   generate var/local.env once (secrets + ports), migrate the database,
#                       start Asterisk and the supervised daemon, wait for /health, create an
#                       admin API token once, print how to call the hotline
#   run-demo.sh stop    stop the daemon (and its supervisor), then Asterisk
#
# Ports and the Asterisk instance name are taken from the environment when var/local.env is
# written (DEMO_SIP_PORT, DEMO_HTTP_PORT, DEMO_ARI_PORT, DEMO_AMI_PORT, DEMO_RTP_START,
# DEMO_INSTANCE) and kept there; setting one of them later rewrites that line, secrets stay.
# The daemon and Asterisk get them as CALLCONTROL__SECTION__FIELD overrides of the config.
# This checkout's code runs (PYTHONPATH), whichever checkout pip installed.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd -P)
PY=${PYTHON:-python3}
CFG=${CALLCONTROL_CONFIG:-config/callcontrol.yaml}
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
mkdir -p var/run var/log

write_env() {
    # Secrets for every {env: NAME} the config reads, SIP user names, ports: var/local.env.
    "$PY" - "$CFG" var/local.env <<'PY'
import os
import secrets
import sys
from pathlib import Path

from callcontrol.sipua.dial import read_env_file
from callcontrol.yamlpos import load_yaml_with_positions

config_file, env_file = Path(sys.argv[1]), Path(sys.argv[2])
old = read_env_file(env_file)
root, _ = load_yaml_with_positions(config_file.read_text(), str(config_file))


def env_refs(node):
    if isinstance(node, dict):
        if set(node) == {"env"}:
            yield str(node["env"])
        for value in node.values():
            yield from env_refs(value)
    elif isinstance(node, list):
        for value in node:
            yield from env_refs(value)


def port(name, default):
    value = os.environ.get(f"DEMO_{name}") or old.get(name) or str(default)
    if not value.isdigit():
        sys.exit(f"run-demo: DEMO_{name}={value!r} is not a port number")
    return value


values = {
    "SIP_HOST": "127.0.0.1",
    "SIP_PORT": port("SIP_PORT", 5060),
    "HTTP_PORT": port("HTTP_PORT", 8080),
    "ARI_PORT": port("ARI_PORT", 8088),
    "AMI_PORT": port("AMI_PORT", 5038),
    "RTP_START": port("RTP_START", 10000),
    "INSTANCE": os.environ.get("DEMO_INSTANCE") or old.get("INSTANCE") or "demo",
}
values["RTP_END"] = str(int(values["RTP_START"]) + 199)
callers = root.get("callers") or []
if callers:
    values["DEMO_CALLER_USER"] = str(callers[0]["id"])
for agent in root.get("agents") or []:
    values[f"AGENT_{str(agent['id']).upper().replace('-', '_')}_USER"] = str(agent["endpoint"])
# Secrets: keep the ones generated earlier, generate the missing ones.
for name in env_refs(root):
    values[name] = old.get(name) or secrets.token_urlsafe(18)
if callers:
    values["DEMO_CALLER_PASSWORD"] = values[callers[0]["password"]["env"]]
for agent in root.get("agents") or []:
    key = f"AGENT_{str(agent['id']).upper().replace('-', '_')}_PASSWORD"
    values[key] = values[agent["password"]["env"]]
# What the daemon and `python -m callcontrol.pbx` read over the config file's values.
overrides = {
    "CALLCONTROL__ASTERISK__INSTANCE_NAME": values["INSTANCE"],
    "CALLCONTROL__ASTERISK__SIP_PORT": values["SIP_PORT"],
    "CALLCONTROL__ASTERISK__RTP_START": values["RTP_START"],
    "CALLCONTROL__ASTERISK__RTP_END": values["RTP_END"],
    "CALLCONTROL__ASTERISK__ARI__URL": f"http://127.0.0.1:{values['ARI_PORT']}",
    "CALLCONTROL__ASTERISK__AMI__PORT": values["AMI_PORT"],
    "CALLCONTROL__HTTP__PORT": values["HTTP_PORT"],
}
lines = ["# Written by make run: the demo's secrets and ports. Never commit this file.",
         "# Use from a shell: set -a; . var/local.env; set +a"]
lines += [f"{key}={value}" for key, value in {**values, **overrides}.items()]
text = "\n".join(lines) + "\n"
if not env_file.exists() or env_file.read_text() != text:
    tmp = env_file.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(text)
    tmp.replace(env_file)
    print(f"run-demo: wrote {env_file}" + ("" if old else " (new demo secrets)"), file=sys.stderr)
PY
}

load_env() { set -a; . var/local.env; set +a; }

# The PID in FILE if that process is alive and its command line holds PATTERN.
alive_pid() {
    local file=$1 pattern=$2 pid
    [ -f "$file" ] || return 1
    pid=$(cat "$file" 2>/dev/null) || return 1
    [[ "$pid" =~ ^[0-9]+$ ]] || return 1
    tr '\0' ' ' < "/proc/$pid/cmdline" 2>/dev/null | grep -q -- "$pattern" || return 1
    echo "$pid"
}

wait_gone() {
    local pid=$1 tenths=$2
    for _ in $(seq 1 "$tenths"); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
    return 1
}

stop() {
    local pid
    if pid=$(alive_pid var/run/supervisor.pid supervise.sh); then
        kill -TERM "$pid"
        wait_gone "$pid" 150 || { echo "run-demo: supervisor $pid did not stop; killing" >&2; kill -KILL "$pid" 2>/dev/null || true; }
    fi
    rm -f var/run/supervisor.pid
    # A daemon left without its supervisor (supervisor killed): stop it too.
    if pid=$(alive_pid var/run/callcontrol.pid callcontrol); then
        kill -TERM "$pid"
        wait_gone "$pid" 150 || kill -KILL "$pid" 2>/dev/null || true
    fi
    rm -f var/run/callcontrol.pid
    "$PY" -m callcontrol.pbx stop --config "$CFG" --state-dir var/asterisk
}

instructions() {
    cat <<TXT

callcontrol demo is running: Asterisk "${INSTANCE}" + the daemon (logs in var/log/, state in var/).
  Call the hotline from this machine (reads var/local.env):
      callcontrol dial 100 --record out.wav
      callcontrol dial 100 --digits 1 --record out.wav      (menu digit 1)
  Or point a softphone at sip:100@${SIP_HOST}:${SIP_PORT}
      user ${DEMO_CALLER_USER}, password DEMO_CALLER_PASSWORD in var/local.env
  Agent headsets (softphones) at ${SIP_HOST}:${SIP_PORT}: ${AGENTS}
      passwords AGENT_<NAME>_PASSWORD in var/local.env; dial *45 to log in, *46 to pause
  Health:  curl http://127.0.0.1:${HTTP_PORT}/health
  Other commands need the demo's environment first:  set -a; . var/local.env; set +a
      callcontrol calls list
      curl -H "Authorization: Bearer \$(cat var/admin.token)" http://127.0.0.1:${HTTP_PORT}/api/calls
  Stop:    make stop
TXT
}

case "${1:-start}" in
stop)
    if [ -f var/local.env ]; then load_env; fi
    stop
    echo "run-demo: stopped"
    exit 0 ;;
start) ;;
*) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac

write_env
load_env
AGENTS=$(grep -oE '^AGENT_[A-Z0-9_]+_USER=.*' var/local.env | cut -d= -f2 | paste -sd, - | sed 's/,/, /g')

if alive_pid var/run/supervisor.pid supervise.sh >/dev/null; then
    echo "run-demo: already running (make stop first to restart)"
    instructions
    exit 0
fi

"$PY" -m callcontrol --config "$CFG" db upgrade >/dev/null
"$PY" -m callcontrol.pbx start --config "$CFG" --state-dir var/asterisk
# The daemon's JSON log holds callers' numbers: readable by this user only (like the journal).
(umask 077; touch var/log/callcontrol.log); chmod 600 var/log/callcontrol.log
setsid nohup bash scripts/supervise.sh "$CFG" var/run/supervisor.pid \
    >> var/log/callcontrol.log 2>&1 < /dev/null &

healthy=0
for _ in $(seq 1 150); do
    if curl -fsS -o /dev/null "http://127.0.0.1:${HTTP_PORT}/health" 2>/dev/null; then healthy=1; break; fi
    sleep 0.2
done
if [ "$healthy" != 1 ]; then
    echo "run-demo: the daemon did not become healthy in 30 s; last lines of var/log/callcontrol.log:" >&2
    tail -n 30 var/log/callcontrol.log >&2 || true
    echo "run-demo: stopping (make stop)" >&2
    stop >&2 || true
    exit 1
fi
if [ ! -s var/admin.token ]; then
    (umask 077; "$PY" -m callcontrol --config "$CFG" tokens create --role admin --name demo-admin > var/admin.token)
fi
instructions
