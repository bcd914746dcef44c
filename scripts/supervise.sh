#!/usr/bin/env bash
# Keep the daemon running (DECISIONS.md, "Restart and adopt"): start `callcontrol run` and start
# it again as soon as it dies: 0.2 s after a death, backing off to 1 s, 2 s, ... 5 s while it
# keeps dying within 5 s of its start (a crash loop). SIGTERM/SIGINT to this script stops the
# daemon gracefully and ends the loop.
#   usage: supervise.sh CONFIG [PIDFILE]   (PIDFILE receives this script's PID)
set -u
cfg=$1
[ $# -ge 2 ] && echo $$ > "$2"
PY=${PYTHON:-python3}
stopping=0
child=
backoff=0
trap 'stopping=1; [ -n "$child" ] && kill -TERM "$child" 2>/dev/null' TERM INT
while [ "$stopping" = 0 ]; do
    started=$SECONDS
    "$PY" -m callcontrol --config "$cfg" run &
    child=$!
    wait "$child"
    rc=$?
    # wait returns early when a trap fires: wait again for the daemon to finish its shutdown
    while kill -0 "$child" 2>/dev/null; do wait "$child"; rc=$?; done
    child=
    [ "$stopping" = 1 ] && break
    if [ $((SECONDS - started)) -lt 5 ]; then
        backoff=$((backoff < 5 ? backoff + 1 : 5))
        delay=$backoff
    else
        backoff=0
        delay=0.2
    fi
    echo "supervise: callcontrol exited with $rc; restarting in $delay s" >&2
    sleep "$delay" &
    wait $!
done
